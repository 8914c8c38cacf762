"""Where the suite's time goes: each test's setup, call and teardown, in wall time and in CPU
time the whole machine spent meanwhile (every process: Flink's JVMs, masters, workers, this
one), so that waiting shows as wall time without CPU.

    FLINKSCHED_TEST_TIMINGS=build/test-timings.json pytest -p tests.timing

Measured across the machine, so the figures of one test are its own only when tests run one
at a time (no xdist). Under xdist each test process writes its own file, the path with the
process's name before its suffix (`build/test-timings-gw0.json`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TICK = os.sysconf("SC_CLK_TCK")
_found: list[dict[str, Any]] = []


def machine_cpu() -> float:
    """CPU seconds all processors have spent busy since boot (not idle, not waiting on I/O)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def _timed(phase: str) -> Callable[[pytest.Item], Iterator[None]]:
    """A hook wrapper timing one phase of every test."""

    @pytest.hookimpl(wrapper=True)
    def wrapper(item: pytest.Item) -> Iterator[None]:
        wall, cpu = time.monotonic(), machine_cpu()
        try:
            return (yield)
        finally:
            _found.append({"test": item.nodeid, "phase": phase,
                           "wall": time.monotonic() - wall, "cpu": machine_cpu() - cpu})

    return wrapper


pytest_runtest_setup = _timed("setup")
pytest_runtest_call = _timed("call")
pytest_runtest_teardown = _timed("teardown")


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("FLINKSCHED_TEST_TIMINGS")
    if target and _found:
        path = Path(target)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:
            path = path.with_name(f"{path.stem}-{worker}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_found, indent=1) + "\n")
