"""A reader of a new status finds its events: the decision that records a status writes the
events explaining it first, whenever it starts nothing in Flink, releasing a job's cluster
included (a removed job's `Removed` status, read before the event naming its savepoint, was
a race the end-to-end test caught)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from common.store.memory import MemoryStore
from common.store.records import Fence, JobStatus, Phase
from tests.model.flinkstandin import FlinkStandIn
from tests.unit.decisions_util import NAME
from tests.unit.test_moves import SESSION, AlwaysConnected, ByName, job_record
from worker.decide.observation import Clock
from worker.supervisor import JobSupervisor


class EventsFirst(MemoryStore):
    """Notes, at each status write, whether the events already name its newest checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.explained: list[tuple[str, bool]] = []

    def write_status(self, name: str, status: JobStatus, version: int, owner: Fence) -> int:
        if status.phase == Phase.REMOVED and status.last_checkpoint is not None:
            messages = [str(e["message"]) for e in self.events(name)]
            self.explained.append((status.last_checkpoint.path,
                                   any(status.last_checkpoint.path in m for m in messages)))
        return super().write_status(name, status, version, owner)


def test_a_removed_job_s_events_name_its_savepoint_before_its_status_says_removed() -> None:
    wall, mono = [1_800_000_000.0], [1_000.0]
    store = EventsFirst()
    flink = FlinkStandIn(NAME, lambda: wall[0])
    store.put_job(job_record(SESSION, 1))
    fence = store.claim_ownership(NAME, "worker-1", 1)
    supervisor = JobSupervisor(store, NAME, fence, AlwaysConnected(), ByName({"default": flink}),
                               clock=lambda: Clock(wall[0], mono[0]))
    supervisor.watched.start()

    def cycles(until: Any) -> JobStatus:
        for _ in range(30):
            wall[0] += 1.0
            mono[0] += 1.0
            supervisor.cycle()
            status = store.status(NAME)[0]
            if until(status):
                return status
        raise AssertionError(f"not reached: {store.status(NAME)[0]}")

    cycles(lambda s: s.phase == Phase.RUNNING)
    record = store.job(NAME)
    assert record is not None
    store.put_job(replace(record, removed_at=wall[0]))
    cycles(lambda s: s.phase == Phase.REMOVED)
    assert store.explained, "the Removed status was never written with its savepoint"
    assert all(named for _, named in store.explained), store.explained
