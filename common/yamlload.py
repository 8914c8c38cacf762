"""Fast YAML loading for config sync: libyaml through PyYAML, with YAML 1.2 scalars.

Thousands of job files are parsed on a master's start, so the common case (a valid file) goes
through libyaml. Only a file that fails gets the slower ruamel.yaml round-trip parse, which
knows the line and column of every key. Both must read a scalar alike, so this loader resolves
plain scalars as YAML 1.2's core schema does (as ruamel.yaml does): `yes`, `on` and `off` stay
strings, `010` is ten, and `1:30` is a string.
"""

from __future__ import annotations

import re
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


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
):
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, _first)
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def fast_documents(text: str) -> list[Any] | None:
    """The documents of `text`, or None when libyaml rejects it (the caller re-parses for a
    located error)."""
    try:
        return list(yaml.load_all(text, Loader=Yaml12Loader))
    except yaml.YAMLError:
        return None


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
