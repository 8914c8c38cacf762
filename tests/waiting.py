"""Waiting on conditions with a deadline: the only way tests synchronize with processes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


FIRST_INTERVAL = 0.05
LONGEST_INTERVAL = 0.5


def intervals(first: float = FIRST_INTERVAL, longest: float = LONGEST_INTERVAL) -> Iterator[float]:
    """The pauses between checks: short at first, half again as long each time up to
    `longest`. A condition met soon is seen soon; one that takes a JVM's start is asked about
    twice a second, not ten times: the test processes, polling, spent 295 of a run's 1,650
    CPU seconds, on the two cores they share with the servers they wait for."""
    pause = first
    while True:
        yield pause
        pause = min(longest, pause * 1.5)


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               interval: float | None = None) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline.
    Every `interval` seconds when given, else at the growing `intervals()`."""
    deadline = time.monotonic() + timeout
    last: object = None
    pauses = intervals() if interval is None else itertools.repeat(interval)
    while True:
        try:
            value = check()
        except Exception as exc:  # a condition that cannot be evaluated yet is not met yet
            value, last = None, exc
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} ({last!r})")
        time.sleep(min(next(pauses), deadline - now))


def holds_for(check: Callable[[], object], seconds: float, what: str,
              interval: float = 0.2) -> None:
    """Assert `check` stays truthy for the whole period (an invariant, not a synchronization)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"{what} stopped holding"
        time.sleep(interval)
