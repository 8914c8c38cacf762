"""Reads a directory of job-config YAML into validated specs, with errors that point at lines.

A bad file, or a bad document in a file, is reported and skipped: it never hides the good ones.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from common.errors import ConfigError
from common.spec.models import FlinkCluster, FlinkJob
from common.spec.programs import URI_FIELDS
from common.spec.yamlload import document_lines, fast_documents

logger = logging.getLogger(__name__)

KINDS: dict[str, type[BaseModel]] = {"FlinkJob": FlinkJob, "FlinkCluster": FlinkCluster}
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Sourced:
    """A validated document and where it came from."""

    document: FlinkJob | FlinkCluster
    file: str
    line: int

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class FileResult:
    """One file's documents and problems. A broken file (unreadable, not YAML, empty, or with
    a document whose job cannot be named) may hide jobs: those keep their last valid spec."""

    items: tuple[Sourced, ...] = ()
    errors: tuple[ConfigError, ...] = ()
    broken: bool = False


@dataclass
class ConfigSet:
    jobs: dict[str, Sourced] = field(default_factory=dict)
    clusters: dict[str, Sourced] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    broken_files: set[str] = field(default_factory=set)
    invalid_jobs: set[str] = field(default_factory=set)  # named, but their document is wrong


def yaml_files(paths: list[Path]) -> list[str]:
    """The YAML files under each directory (in path order: the first definition of a name
    wins), and each file given itself. Directories whose names start with a dot (`.git`, a
    git-sync worktree's metadata) are not config and are not entered. The master lists the
    directory every second: strings and os.scandir, whose entries know their type without
    a stat, not pathlib (which took 0.2 s for 5,000 files)."""
    files: list[str] = []
    for path in paths:
        if path.is_dir():
            found: list[tuple[tuple[str, ...], str]] = []
            _scan(str(path), (), found)
            files.extend(full for _, full in sorted(found))
        else:
            files.append(str(path))
    return files


def _scan(directory: str, parts: tuple[str, ...], found: list[tuple[tuple[str, ...], str]],
          ) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir():
                if not entry.name.startswith(".") and not entry.is_symlink():
                    _scan(entry.path, (*parts, entry.name), found)
            elif os.path.splitext(entry.name)[1] in YAML_SUFFIXES and entry.is_file():
                found.append(((*parts, entry.name), entry.path))


class ConfigLoader:
    """Reads config paths into a ConfigSet; a file is parsed again only when it changed."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int, int], FileResult]] = {}
        self.parsed = 0  # files parsed by the last load, the rest came from the cache

    def load(self, paths: list[Path]) -> ConfigSet:
        result = ConfigSet()
        cache: dict[str, tuple[tuple[int, int, int], FileResult]] = {}
        self.parsed = 0
        for key in yaml_files(paths):
            try:
                stat = os.stat(key)
                signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except OSError:
                signature = (0, 0, 0)
            cached = self._cache.get(key)
            if cached is not None and cached[0] == signature and signature != (0, 0, 0):
                loaded = cached[1]
            else:
                loaded = load_file(Path(key))
                self.parsed += 1
            cache[key] = (signature, loaded)
            result.files.append(key)
            result.errors.extend(loaded.errors)
            result.invalid_jobs.update(e.job for e in loaded.errors if e.job)
            if loaded.broken:
                result.broken_files.add(key)
            for item in loaded.items:
                _add(result, item)
        self._cache = cache
        _check_clusters(result)
        return result


def load_config_paths(paths: list[Path]) -> ConfigSet:
    """Every YAML file under the given files and directories, checked as one set."""
    return ConfigLoader().load(paths)


def _add(result: ConfigSet, item: Sourced) -> None:
    is_job = isinstance(item.document, FlinkJob)
    table = result.jobs if is_job else result.clusters
    name = item.document.name
    earlier = table.get(name)
    if earlier is None and not (is_job and name in result.invalid_jobs):
        table[name] = item
        return
    kind = type(item.document).__name__
    where = earlier.source if earlier else "another file, where it is invalid"
    line, column = locate(item, ["metadata", "name"])
    result.errors.append(ConfigError(f"duplicate {kind} name {name!r}: also defined at {where}",
                                     file=item.file, line=line, column=column,
                                     field="metadata.name", job=name if is_job else ""))
    if is_job:  # which of the two is meant is unknown: the job keeps its last valid spec
        result.invalid_jobs.add(name)
        table.pop(name, None)


def _check_clusters(result: ConfigSet) -> None:
    for name, item in list(result.jobs.items()):
        assert isinstance(item.document, FlinkJob)
        cluster = item.document.spec.cluster
        problem, where = "", ["spec", "cluster"]
        if cluster not in result.clusters:
            known = ", ".join(sorted(result.clusters)) or "none"
            problem = (f"job {name!r} names FlinkCluster {cluster!r}, which no file defines "
                       f"(defined: {known})")
        elif any(uri.startswith("local://") for uri in item.document.spec.job.program.uris) \
                and not _local_uris(result.clusters[cluster]):
            problem, where = (f"job {name!r} runs on session cluster {cluster!r}: local:// "
                              "names a path in an application cluster's image; a session "
                              "cluster needs file://, http(s)://, object storage (s3://, "
                              "gs://, az://) or a path"), [
                "spec", "job", _local_field(item.document)]
        if problem:
            line, column = locate(item, where)
            result.errors.append(
                ConfigError(problem, file=item.file, line=line, column=column,
                            field=".".join(where), job=name)
            )
            result.invalid_jobs.add(name)
            del result.jobs[name]


def _local_field(job: FlinkJob) -> str:
    """The spec field naming a local:// file."""
    section = job.spec.job

    def local(named: Any) -> bool:
        items = named if isinstance(named, list) else [named]
        return any(str(item or "").startswith("local://") for item in items)

    return next((name for name in URI_FIELDS if local(getattr(section, name, None))),
                URI_FIELDS[0])


def _local_uris(item: Sourced) -> bool:
    """The cluster's kind lets its jobs name files in the image their clusters run."""
    return isinstance(item.document, FlinkCluster) and item.document.spec.rules.local_uris


def locate(item: Sourced, loc: list[str]) -> tuple[int | None, int | None]:
    """Line and column of a field of a valid document (parsed again: only for errors)."""
    try:
        documents = YAML(typ="rt").load_all(Path(item.file).read_text(encoding="utf-8"))
        for raw in documents:
            if isinstance(raw, CommentedMap) and raw.lc.line + 1 == item.line:
                return _position(raw, loc)
    except (OSError, UnicodeDecodeError, YAMLError):
        pass
    return item.line, None


MAX_FILE_BYTES = 64 * 1024 * 1024  # 10,000 jobs take about 1.5 MB
LOCATE_MAX_CHARS = 1024 * 1024  # problems of bigger files are located to their documents


def load_file(file: Path) -> FileResult:
    """One file: libyaml first; a file with any problem is parsed again to locate it."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            return _unreadable(file, f"file is larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _unreadable(file, f"cannot read file: {exc}")
    if "\x00" in text:
        return _unreadable(file, "not a text file (it contains NUL bytes)")
    try:
        return _load_text(file, text)
    except RecursionError:
        return _unreadable(file, "nested too deeply to be a job config")


def _unreadable(file: Path, message: str) -> FileResult:
    return FileResult(errors=(ConfigError(message, file=str(file)),), broken=True)


def _load_text(file: Path, text: str) -> FileResult:
    documents = fast_documents(text)
    lines = document_lines(text)
    if documents is not None and len(documents) == len(lines):
        items = []
        for raw, line in zip(documents, lines, strict=True):
            if raw is None:
                continue
            item = _build(raw, file, line) if isinstance(raw, dict) else None
            if item is None:
                break
            items.append(item)
        else:
            if items:
                return FileResult(items=tuple(items))
    if len(text) > LOCATE_MAX_CHARS:
        return _load_unlocated(file, text, documents, lines)
    return _load_located(file, text)


def _load_unlocated(file: Path, text: str, documents: list[Any] | None,
                    lines: list[int]) -> FileResult:
    """A big file's problems, each located to its document's first line: the locating
    parser (pure Python) takes minutes over megabytes (an 8 MiB comment took over 300 s)."""
    where = f"a file over {LOCATE_MAX_CHARS // 2**20} MiB is located to its documents only"
    if documents is None or len(documents) != len(lines):
        return _unreadable(file, f"YAML syntax error ({where}; parse it with any YAML tool "
                                 "to find the line)")
    errors: list[ConfigError] = []
    items = []
    broken = False
    for raw, line in zip(documents, lines, strict=True):
        if raw is None:
            continue
        if not isinstance(raw, dict):
            errors.append(ConfigError("a document must be a mapping", file=str(file), line=line))
            broken = True
            continue
        job, kind = _job_name(raw), raw.get("kind")
        model = KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            hint = _did_you_mean(str(kind), list(KINDS))
            errors.append(ConfigError(f"unknown kind {kind!r}; expected one of "
                                      f"{', '.join(KINDS)}{hint}", file=str(file), line=line,
                                      field="kind", job=job))
            broken = broken or not job
            continue
        try:
            items.append(_sourced(model, raw, file, line))
        except ValidationError as exc:
            for error in exc.errors():
                field, message = _described(error, model)
                errors.append(ConfigError(message, file=str(file), line=line, field=field,
                                          job=job))
            broken = broken or not job
    return FileResult(items=tuple(items), errors=tuple(errors), broken=broken)


def _build(data: dict[str, Any], file: Path, line: int) -> Sourced | None:
    """The document if it is valid, else None (without saying why: see _load_located)."""
    model = KINDS.get(data.get("kind"))  # type: ignore[arg-type]
    if model is None:
        return None
    try:
        return _sourced(model, data, file, line)
    except ValidationError:
        return None


def _sourced(model: type[BaseModel], data: Any, file: Path, line: int) -> Sourced:
    """Validate freshly parsed data (jar paths resolved against the file); raises
    ValidationError."""
    if model is FlinkJob:
        data = _resolve_paths(data, file)
    document = model.model_validate(data)
    assert isinstance(document, FlinkJob | FlinkCluster)
    return Sourced(document=document, file=str(file), line=line)


def _load_located(file: Path, text: str) -> FileResult:
    try:
        documents = list(YAML(typ="rt").load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        error = ConfigError(
            f"YAML syntax error: {exc.problem or exc.context}",
            file=str(file),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        return FileResult(errors=(error,), broken=True)
    except YAMLError as exc:
        return FileResult(errors=(ConfigError(f"YAML error: {exc}", file=str(file)),),
                          broken=True)
    errors: list[ConfigError] = []
    items = []
    broken = False
    for raw in documents:
        if raw is None:
            continue
        item = _validate(raw, file, errors)
        if item is not None:
            items.append(item)
        elif not (isinstance(raw, CommentedMap) and _job_name(raw)):
            broken = True
    if not items and not errors:
        errors.append(ConfigError("file is empty: expected FlinkJob or FlinkCluster documents",
                                  file=str(file), line=1, column=1))
        broken = True
    return FileResult(items=tuple(items), errors=tuple(errors), broken=broken)


def _job_name(raw: dict[str, Any]) -> str:
    """The name a document gives itself, if it can be read, so an invalid job can be held."""
    metadata = raw.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and raw.get("kind") != "FlinkCluster" else ""


def _validate(raw: Any, file: Path, errors: list[ConfigError]) -> Sourced | None:
    if not isinstance(raw, CommentedMap):
        errors.append(ConfigError("a document must be a mapping", file=str(file)))
        return None
    line = raw.lc.line + 1
    job = _job_name(raw)
    kind = raw.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = _did_you_mean(str(kind), list(KINDS))
        kind_line, kind_column = _position(raw, ["kind"])
        errors.append(
            ConfigError(
                f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}{hint}",
                file=str(file),
                line=kind_line,
                column=kind_column,
                field="kind",
                job=job,
            )
        )
        return None
    try:
        return _sourced(model, plain_data(raw), file, line)
    except ValidationError as exc:
        for error in exc.errors():
            errors.append(_located(error, raw, file, model, job))
        return None


def _resolve_paths(data: Any, file: Path) -> Any:
    """Relative paths of a program's files resolve against the YAML file that names them."""
    try:
        job = data["spec"]["job"]
    except (KeyError, TypeError):
        return data
    if not isinstance(job, dict):
        return data
    def resolved(uri: Any) -> Any:
        if isinstance(uri, str) and uri.strip() and "://" not in uri:
            return (file.parent / uri).resolve().as_uri()
        return uri

    for name in URI_FIELDS:
        named = job.get(name)
        job[name] = [resolved(u) for u in named] if isinstance(named, list) else resolved(named)
        if named is None:
            job.pop(name)
    return data


def _located(
    error: Any, raw: CommentedMap, file: Path, model: type[BaseModel], job: str
) -> ConfigError:
    loc = [part for part in error["loc"] if not isinstance(part, str) or "[" not in part]
    line, column = _position(raw, loc)
    field, message = _described(error, model)
    return ConfigError(message, file=str(file), line=line, column=column, field=field, job=job)


def _described(error: Any, model: type[BaseModel]) -> tuple[str, str]:
    """The field a validation error is about, and what to say of it."""
    loc = [part for part in error["loc"] if not isinstance(part, str) or "[" not in part]
    field = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        hint = _did_you_mean(str(loc[-1]), _all_field_names(model))
        message = f"unknown field{hint}"
    elif error["type"] == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if error.get("input") is not None and error["type"] != "value_error":
            message += f" (got {error['input']!r})"
    return field, message


def _position(node: Any, loc: list[Any]) -> tuple[int | None, int | None]:
    """The 1-based line and column of the deepest part of `loc` that exists in the YAML."""
    line, column = node.lc.line + 1, node.lc.col + 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            key_line, key_col = node.lc.key(part)
            line, column = key_line + 1, key_col + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            item_line, item_col = node.lc.item(part)
            line, column = item_line + 1, item_col + 1
            node = node[part]
        else:
            break
    return line, column


def plain_data(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): plain_data(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain_data(value) for value in node]
    return node


def _all_field_names(model: type[BaseModel]) -> list[str]:
    names: list[str] = []
    for name, info in model.model_fields.items():
        names.append(name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(_all_field_names(annotation))
    return names


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
