"""Fast YAML loading for config sync: libyaml through PyYAML, with YAML 1.2 scalars.

Thousands of job files are parsed on a master's start, so the common case (a valid file) goes
through libyaml. Only a file that fails gets the slower ruamel.yaml round-trip parse, which
knows the line and column of every key. Both must read a scalar alike, so this loader resolves
plain scalars as YAML 1.2's core schema does (as ruamel.yaml does): `yes`, `on` and `off` stay
strings, `010` is ten, and `1:30` is a string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import yaml

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class Yaml12Loader(_Base):  # type: ignore[misc]
    """A safe loader whose implicit scalar types are YAML 1.2's core schema."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
):
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, _first)


def fast_documents(text: str) -> list[Any] | None:
    """The documents of `text`, or None when libyaml rejects it or it uses what this plain
    reading leaves out (merge keys, explicit tags): the caller then re-parses, with
    locations, through ruamel.yaml."""
    loader = Yaml12Loader(text)
    try:
        documents = []
        while loader.check_node():
            documents.append(_value(loader.get_node()))
        return documents
    except (yaml.YAMLError, _Unsupported, ValueError, TypeError):
        return None
    finally:
        loader.dispose()


class _Unsupported(Exception):
    pass


def _int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _float(text: str) -> float:
    return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))


_SCALARS: dict[str, Callable[[str], Any]] = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:null": lambda text: None,
    "tag:yaml.org,2002:bool": lambda text: text.lower() == "true",
    "tag:yaml.org,2002:int": _int,
    "tag:yaml.org,2002:float": _float,
}


def _value(node: yaml.Node) -> Any:
    """A composed node as plain data: faster than PyYAML's constructor, which dominates
    parsing thousands of small files even with libyaml."""
    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            raise _Unsupported(node.tag)
        out = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                raise _Unsupported("merge key")
            name = _value(key)
            if isinstance(name, list | dict) or name in out:
                raise _Unsupported("duplicate or complex key")  # ruamel.yaml says where
            out[name] = _value(value)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            raise _Unsupported(node.tag)
        return [_value(item) for item in node.value]
    convert = _SCALARS.get(node.tag)
    if convert is None:
        raise _Unsupported(node.tag)
    return convert(node.value)


_SEPARATOR = re.compile(r"^---(?:\s|$)")


def document_lines(text: str) -> list[int]:
    """The 1-based line where each document's content starts, as `load_all` yields them."""
    starts: list[int] = []
    current: int | None = None
    seen_separator = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _SEPARATOR.match(line):
            if current is not None or seen_separator:
                starts.append(current or number)
            seen_separator, current = True, None
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                current = number
            continue
        stripped = line.strip()
        if current is None and stripped and not stripped.startswith(("#", "%")):
            current = number
    if current is not None or seen_separator:
        starts.append(current or len(text.splitlines()) or 1)
    return starts
