"""Durations with units, as users write them in YAML: `500ms`, `10s`, `5m`, `1h`, `1d`."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: object) -> float:
    """Seconds for a duration string; a bare number means seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 10s or 5m, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"expected a duration like 500ms, 10s, 5m or 1h, got {value!r}")


# Flink's own spelling of durations in its configuration (`TimeUtils.parseDuration`): a
# number and a unit, case-insensitive, milliseconds when the unit is left out.
_FLINK_UNITS = {
    **dict.fromkeys(("ns", "nano", "nanos", "nanosecond", "nanoseconds"), 1e-9),
    **dict.fromkeys(("µs", "micro", "micros", "microsecond", "microseconds"), 1e-6),
    **dict.fromkeys(("ms", "milli", "millis", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
_FLINK_PATTERN = re.compile(r"^\s*(\d+)\s*([^\d\s]*)\s*$")


def parse_flink_duration(value: str) -> float:
    """Seconds for a duration as Flink reads it from its configuration: `10min`, `30 s`,
    `1h`, `500` (milliseconds)."""
    match = _FLINK_PATTERN.match(value)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in _FLINK_UNITS):
        raise ValueError(f"not a duration Flink reads: {value!r}")
    return int(match.group(1)) * (_FLINK_UNITS[unit] if unit else 0.001)


def format_duration(seconds: float) -> str:
    """Short human form: 42s, 3m, 2h05m, 4d."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"
