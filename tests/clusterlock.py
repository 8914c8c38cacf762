"""Tests share a Flink session cluster; a test that takes it down (a JobManager SIGKILL) has it
to itself: it waits until the tests using it have ended, and holds new ones back meanwhile.

A readers-writer lock across the run's processes, from two `flock` locks: every test holds
the cluster's lock shared, the one that takes the cluster down holds it exclusively, and a
turnstile that the exclusive holder keeps while it waits stops new shared holders from
starving it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[IO[str]]:
    with path.open("a") as handle:  # an open file description of its own: flock is per one
        fcntl.flock(handle, mode)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ClusterLock:
    def __init__(self, directory: Path, cluster: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.turnstile = directory / f"{cluster}.turnstile"
        self.main = directory / f"{cluster}.lock"

    @contextmanager
    def shared(self) -> Iterator[None]:
        with _flock(self.turnstile, fcntl.LOCK_EX):
            held = _flock(self.main, fcntl.LOCK_SH)
            held.__enter__()
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with _flock(self.turnstile, fcntl.LOCK_EX), _flock(self.main, fcntl.LOCK_EX):
            yield
