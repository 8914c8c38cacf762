"""Assignment as a pure decision: which job goes to which live worker."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from common.store.records import WorkerInfo


@dataclass
class Assignment:
    assign: list[tuple[str, str]] = field(default_factory=list)  # (worker, job)
    unassign: list[tuple[str, str]] = field(default_factory=list)  # (worker, job)
    dead_workers: list[str] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)  # jobs no worker could take


def assign_jobs(
    jobs: Iterable[str],
    workers: Mapping[str, WorkerInfo],
    current: Mapping[str, Collection[str]],
) -> Assignment:
    """Every desired job on exactly one live worker with a free slot; spread, never moved."""
    plan = Assignment()
    desired = set(jobs)
    load: dict[str, int] = {worker_id: 0 for worker_id in workers}
    placed: set[str] = set()
    for worker_id in sorted(current):
        names = current[worker_id]
        if worker_id not in workers:
            plan.dead_workers.append(worker_id)
            plan.unassign.extend((worker_id, name) for name in sorted(names))
            continue
        for name in sorted(names):
            if name not in desired or name in placed:
                plan.unassign.append((worker_id, name))
                continue
            placed.add(name)
            load[worker_id] += 1
    for name in sorted(desired - placed):
        free = [w for w in workers if load[w] < workers[w].slots]
        if not free:
            plan.unassigned.append(name)
            continue
        target = min(free, key=lambda w: (load[w] / workers[w].slots, load[w], w))
        plan.assign.append((target, name))
        load[target] += 1
    return plan
