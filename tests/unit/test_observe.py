"""What the observer checks before it hands a value read from Flink to the decision."""

from __future__ import annotations

from typing import Any, cast

from tests.unit.decisions_util import status
from worker.observation import Memory, SavepointState
from worker.observe import Observer
from worker.target import DeploymentTarget


class Reports:
    def __init__(self, location: str) -> None:
        self.location = location

    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, Any]:
        return "COMPLETED", self.location


def progress(location: str) -> Any:
    observer = Observer("orders", "worker-a", lambda: None)
    target = cast(DeploymentTarget, Reports(location))
    return observer._stop(status(), target, Memory(stop_trigger="t1"), "")


def test_a_savepoint_flink_reports_is_checked_before_it_is_restored_from() -> None:
    assert progress("s3://sp/savepoint-1").state is SavepointState.COMPLETED
    unusable = progress("<checkpoint-not-externally-addressable>")
    assert unusable.state is SavepointState.LOST and "cannot be restored" in unusable.detail
    assert progress("").state is SavepointState.LOST
