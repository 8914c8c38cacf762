from __future__ import annotations

from typing import Any, cast

from common.flink.client import FlinkClient
from common.store.records import JobStatus
from worker.savepoints import SavepointKeeper


class ScriptedFlink:
    """Savepoint answers in order, as Flink gave them: a pure stand-in for two REST calls."""

    def __init__(self, results: list[tuple[str, str]]) -> None:
        self.results = results
        self.triggered = 0

    def trigger_savepoint(self, job_id: str, directory: str | None = None) -> str:
        self.triggered += 1
        return f"trigger-{self.triggered}"

    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, str]:
        return self.results.pop(0)


def steps(keeper: SavepointKeeper, flink: Any, count: int) -> list[str]:
    events: list[str] = []
    for _ in range(count):
        events += keeper.step(cast(FlinkClient, flink), JobStatus(attempt=2), "id", 5).events
    return events


def test_a_savepoint_refused_while_tasks_deploy_is_asked_for_again() -> None:
    flink = ScriptedFlink([
        ("FAILED", "CheckpointException: Checkpoint triggering task Source (1/1) of job id is "
                   "not being executed at the moment. Failure reason: Not all required tasks "
                   "are currently running."),
        ("COMPLETED", "file:/savepoints/savepoint-1"),
    ])
    keeper = SavepointKeeper("orders", None)
    keeper.request("requested by ops@host")
    events = steps(keeper, flink, 4)  # trigger, refused, trigger again, completed
    assert flink.triggered == 2
    assert events == ["savepoint (requested by ops@host) completed: file:/savepoints/savepoint-1"]


def test_any_other_failure_is_reported_once() -> None:
    flink = ScriptedFlink([("FAILED", "IOException: disk full")])
    keeper = SavepointKeeper("orders", None)
    keeper.request("scheduled")
    assert steps(keeper, flink, 3) == ["savepoint (scheduled) failed: IOException: disk full"]
    assert flink.triggered == 1
