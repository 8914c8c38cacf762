"""Reads a directory of job-config YAML into validated specs, with errors that point at lines.

A bad file, or a bad document in a file, is reported and skipped: it never hides the good ones.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from common.errors import ConfigError
from common.spec import FlinkCluster, FlinkJob

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


@dataclass
class ConfigSet:
    jobs: dict[str, Sourced] = field(default_factory=dict)
    clusters: dict[str, Sourced] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)


def load_config_paths(paths: list[Path]) -> ConfigSet:
    """Every YAML file under the given files and directories, checked as one set."""
    result = ConfigSet()
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*")) if p.suffix in YAML_SUFFIXES and p.is_file()
            )
        else:
            files.append(path)
    for file in files:
        for item in _load_file(file, result.errors):
            table = result.jobs if isinstance(item.document, FlinkJob) else result.clusters
            kind = type(item.document).__name__
            earlier = table.get(item.document.name)
            if earlier is not None:
                result.errors.append(
                    ConfigError(
                        f"duplicate {kind} name {item.document.name!r}: "
                        f"also defined at {earlier.source}",
                        file=item.file,
                        line=item.line,
                        field="metadata.name",
                    )
                )
                continue
            table[item.document.name] = item
    for name, item in list(result.jobs.items()):
        assert isinstance(item.document, FlinkJob)
        cluster = item.document.spec.cluster
        if cluster not in result.clusters:
            result.errors.append(
                ConfigError(
                    f"job {name!r} names FlinkCluster {cluster!r}, which no file defines",
                    file=item.file,
                    line=item.line,
                    field="spec.cluster",
                )
            )
            del result.jobs[name]
    return result


def _load_file(file: Path, errors: list[ConfigError]) -> list[Sourced]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(ConfigError(f"cannot read file: {exc}", file=str(file)))
        return []
    try:
        documents = list(YAML(typ="rt").load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        errors.append(
            ConfigError(
                f"YAML syntax error: {exc.problem or exc.context}",
                file=str(file),
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        )
        return []
    except YAMLError as exc:
        errors.append(ConfigError(f"YAML error: {exc}", file=str(file)))
        return []
    loaded = []
    for raw in documents:
        if raw is None:
            continue
        item = _validate(raw, file, errors)
        if item is not None:
            loaded.append(item)
    return loaded


def _validate(raw: Any, file: Path, errors: list[ConfigError]) -> Sourced | None:
    if not isinstance(raw, CommentedMap):
        errors.append(ConfigError("a document must be a mapping", file=str(file)))
        return None
    line = raw.lc.line + 1
    kind = raw.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = _did_you_mean(str(kind), list(KINDS))
        errors.append(
            ConfigError(
                f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}{hint}",
                file=str(file),
                line=line,
                field="kind",
            )
        )
        return None
    data = _plain(raw)
    if model is FlinkJob:
        data = _resolve_jar(data, file)
    try:
        document = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            errors.append(_located(error, raw, file, model))
        return None
    assert isinstance(document, FlinkJob | FlinkCluster)
    return Sourced(document=document, file=str(file), line=line)


def _resolve_jar(data: Any, file: Path) -> Any:
    """Relative jar paths resolve against the YAML file that names them."""
    try:
        uri = data["spec"]["job"]["jarURI"]
    except (KeyError, TypeError):
        return data
    if isinstance(uri, str) and "://" not in uri:
        data["spec"]["job"]["jarURI"] = (file.parent / uri).resolve().as_uri()
    return data


def _located(error: Any, raw: CommentedMap, file: Path, model: type[BaseModel]) -> ConfigError:
    loc = [part for part in error["loc"] if not isinstance(part, str) or "[" not in part]
    line, column = _position(raw, loc)
    field = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        hint = _did_you_mean(str(loc[-1]), _all_field_names(model))
        message = f"unknown field{hint}"
    elif error["type"] == "missing":
        message = "required field is missing"
    else:
        message = error["msg"]
        if error.get("input") is not None and error["type"] != "value_error":
            message += f" (got {error['input']!r})"
    return ConfigError(message, file=str(file), line=line, column=column, field=field)


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


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
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
