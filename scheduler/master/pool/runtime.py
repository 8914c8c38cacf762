"""Where worker processes come from: started by the master (local), as Kubernetes pods
(kubernetes), or by something else entirely (static)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

from common.store.records import WorkerInfo


class WorkerRuntime(Protocol):
    name: str

    def reconcile(
        self, wanted: int, workers: Mapping[str, WorkerInfo], busy: set[str]
    ) -> str:
        """Bring the pool to `wanted` workers; never stop a busy one. Returns what it did."""
        ...

    def close(self) -> None: ...


def pool_size(jobs: int, slots_per_worker: int, spares: int, workers: int = 0,
              waiting: int = 0) -> int:
    """Workers needed: enough slots for every job, plus warm spares so that reassignment
    never waits for a process or pod to start. Jobs `waiting` for a slot although the pool
    has `workers` (workers of fewer slots, or some that took more than their share) get new
    workers of their own."""
    slots = max(1, slots_per_worker)
    by_jobs = math.ceil(jobs / slots) + spares
    if not waiting:
        return by_jobs
    return max(by_jobs, workers + math.ceil(waiting / slots) + spares)


class StaticRuntime:
    """Workers are started by something else (systemd, another scheduler): only assign."""

    name = "static"

    def reconcile(
        self, wanted: int, workers: Mapping[str, WorkerInfo], busy: set[str]
    ) -> str:
        return ""

    def close(self) -> None:
        pass
