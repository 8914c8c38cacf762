"""Waiting on conditions with a deadline: the only way tests synchronize with processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
        except Exception as exc:  # a condition that cannot be evaluated yet is not met yet
            value, last = None, exc
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} ({last!r})")
        time.sleep(interval)


def holds_for(check: Callable[[], object], seconds: float, what: str,
              interval: float = 0.2) -> None:
    """Assert `check` stays truthy for the whole period (an invariant, not a synchronization)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"{what} stopped holding"
        time.sleep(interval)
