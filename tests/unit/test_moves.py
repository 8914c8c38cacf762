"""A job moving from one cluster to another, driven through the real supervisor (observer,
decision, actor) against the in-memory store and two in-process Flink stand-ins: the attempt
is stopped where it runs before the next starts on the new cluster, by the job's
upgradeMode, and never are two attempts alive; a cluster of the job's own that was adopted
names its UI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from common.spec.models import FlinkJobSpec
from common.store.memory import MemoryStore
from common.store.records import JobRecord, JobStatus, Phase
from scheduler.master.changes import submit_hash
from tests.model.flinkstandin import FlinkStandIn
from tests.unit.decisions_util import NAME
from worker.decide.observation import Clock
from worker.supervisor import JobSupervisor
from worker.targets import DeploymentTarget

SESSION = {"metadata": {"name": "default"}, "spec": {"restUrl": "http://flink-a:8081"}}
OWN = {"metadata": {"name": "own"}, "spec": {"mode": "application"}}


class AlwaysConnected:
    def can_act(self) -> bool:
        return True


@dataclass
class ByName:
    """Each FlinkCluster's stand-in, by the cluster's name."""

    clusters: dict[str, FlinkStandIn]

    def for_job(self, name: str, record: JobRecord,
                poll_interval: Callable[[], float]) -> DeploymentTarget:
        return self.clusters[record.cluster["metadata"]["name"]]


def job_record(cluster: dict[str, Any], generation: int, mode: str = "savepoint",
               previous: dict[str, Any] | None = None) -> JobRecord:
    spec = FlinkJobSpec.model_validate({"job": {"jarURI": "file:///jobs/orders.jar",
                                                "upgradeMode": mode}}).model_dump(mode="json")
    return JobRecord(NAME, spec, cluster, generation, f"hash-{generation}", "orders.yaml",
                     submit_hash=submit_hash(spec, cluster), previous_cluster=previous)


class Move:
    def __init__(self, mode: str = "savepoint") -> None:
        self.wall, self.mono = 1_800_000_000.0, 1_000.0
        self.store = MemoryStore()
        self.a = FlinkStandIn(NAME, lambda: self.wall)
        self.b = FlinkStandIn(NAME, lambda: self.wall)
        self.b.rest_url = self.b.attempt_url = "http://localhost:31000"  # the job's own
        self.mode = mode
        self.store.put_job(job_record(SESSION, 1, mode))
        fence = self.store.claim_ownership(NAME, "worker-1", 1)
        self.supervisor = JobSupervisor(self.store, NAME, fence, AlwaysConnected(),
                                        ByName({"default": self.a, "own": self.b}),
                                        clock=lambda: Clock(self.wall, self.mono))
        self.supervisor.watched.start()
        self.alive_at_once = 0

    def status(self) -> JobStatus:
        return self.store.status(NAME)[0]

    def cycles(self, until: Callable[[JobStatus], bool], limit: int = 30) -> JobStatus:
        for _ in range(limit):
            self.wall += 1.0
            self.mono += 1.0
            self.supervisor.cycle()
            self.alive_at_once = max(self.alive_at_once, len(self.a.live() + self.b.live()))
            status = self.status()
            if until(status):
                return status
        raise AssertionError(f"not reached in {limit} cycles: {self.status()}")

    def move_to_own(self) -> None:
        self.store.put_job(job_record(OWN, 2, self.mode, previous=SESSION))


@pytest.mark.parametrize("mode", ["savepoint", "last-state"])
def test_a_move_stops_the_attempt_where_it_runs_then_starts_on_the_new_cluster(
        mode: str) -> None:
    move = Move(mode)
    first = move.cycles(lambda s: s.phase == Phase.RUNNING)
    newest = move.a.checkpoint()
    move.move_to_own()
    moved = move.cycles(lambda s: s.phase == Phase.RUNNING and s.attempt == first.attempt + 1)
    assert move.alive_at_once == 1, "never two attempts alive"
    assert move.a.live() == [] and move.b.live() == [moved.flink_job_id]
    assert [job_id for job_id, _ in move.b.submissions] == [moved.flink_job_id]
    assert len(move.a.submissions) == 1, "nothing more submitted to the cluster left"
    if mode == "savepoint":
        assert first.flink_job_id in move.a.stopped
        assert moved.restored_from.startswith("s3://sp/savepoint-")
    else:
        assert move.a.attempts_by_id[first.flink_job_id].state == "CANCELED"
        assert moved.restored_from == newest, "from the newest checkpoint, read where it ran"
    assert moved.cluster_url == "http://localhost:31000", "its own cluster's UI"


def test_a_cluster_left_that_cannot_be_read_holds_the_move() -> None:
    move = Move()
    move.cycles(lambda s: s.phase == Phase.RUNNING)
    move.a.reachable = False
    move.move_to_own()
    waiting = move.cycles(lambda s: s.phase == Phase.CLUSTER_UNREACHABLE)
    assert move.b.submissions == [], "nothing started beside an attempt that may still run"
    move.a.reachable = True
    move.cycles(lambda s: s.phase == Phase.RUNNING and s.attempt == waiting.attempt + 1)
    assert move.alive_at_once == 1


def test_attempts_left_alive_on_the_cluster_left_are_cancelled() -> None:
    move = Move()
    first = move.cycles(lambda s: s.phase == Phase.RUNNING)
    move.move_to_own()
    moved = move.cycles(lambda s: s.phase == Phase.RUNNING and s.attempt == first.attempt + 1)
    stray = first.flink_job_id[:16] + f"{first.attempt + 5:016x}"
    move.a.attempts_by_id[stray] = replace(move.a.attempts_by_id[first.flink_job_id],
                                           state="RUNNING")
    move.supervisor._previous_target = None  # a worker that starts afresh looks again
    move.cycles(lambda s: not move.a.live())
    assert move.status().flink_job_id == moved.flink_job_id
    assert any("cancelled attempt" in e["message"] and "moved from" in e["message"]
               for e in move.store.events(NAME))


def test_an_adopted_attempt_on_a_cluster_of_its_own_names_its_ui() -> None:
    move = Move()
    move.cycles(lambda s: s.phase == Phase.RUNNING)
    move.move_to_own()
    moved = move.cycles(lambda s: s.phase == Phase.RUNNING and s.cluster_url != "")
    # ZooKeeper lost its data: a fresh status, the attempt still running on its cluster.
    move.store.restore_status(NAME, JobStatus())
    move.supervisor.actor.stale = True
    adopted = move.cycles(lambda s: s.attempt == moved.attempt and s.phase == Phase.RUNNING)
    assert adopted.cluster_url == "http://localhost:31000"
