from __future__ import annotations

from common.store.records import WorkerInfo
from scheduler.master.assign import assign_jobs


def worker(worker_id: str, slots: int = 1) -> WorkerInfo:
    return WorkerInfo(worker_id, "host", 1, slots, "dev", 0.0)


def test_each_job_goes_to_one_worker_with_a_free_slot() -> None:
    plan = assign_jobs(["a", "b", "c"], {"w1": worker("w1"), "w2": worker("w2")}, {})
    assert sorted(plan.assign) == [("w1", "a"), ("w2", "b")]
    assert plan.unassigned == ["c"]


def test_jobs_of_a_dead_worker_are_reassigned_and_live_ones_never_move() -> None:
    workers = {"w2": worker("w2"), "w3": worker("w3")}
    current = {"w1": {"a"}, "w2": {"b"}}
    plan = assign_jobs(["a", "b"], workers, current)
    assert plan.dead_workers == ["w1"]
    assert plan.unassign == [("w1", "a")]
    assert plan.assign == [("w3", "a")]


def test_removed_jobs_are_unassigned() -> None:
    plan = assign_jobs([], {"w1": worker("w1")}, {"w1": {"gone"}})
    assert plan.unassign == [("w1", "gone")] and plan.assign == []
