"""What the observer checks before it hands a value read from Flink to the decision."""

from __future__ import annotations

from typing import Any, cast

import pytest

from common.flink.jobstate import JobState
from common.store.pushed import PushedEvent
from tests.unit.decisions_util import job_id, record, status
from tests.unit.fakestorage import FakeStorage
from worker.decide.observation import Clock, FlinkView, Memory, SavepointState
from worker.observe import PUSH_CONFIRM_WINDOW, Observer
from worker.targets import DeploymentTarget


class Reports:
    def __init__(self, location: str) -> None:
        self.location = location
        self.storage = FakeStorage({"s3://sp/savepoint-1/_metadata": 10})

    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, Any]:
        return "COMPLETED", self.location


def progress(location: str) -> Any:
    observer = Observer("orders", "worker-a", lambda: None)
    target = cast(DeploymentTarget, Reports(location))
    return observer._stop(status(), target, Memory(stop_trigger="t1"), "")


def test_a_savepoint_flink_reports_is_checked_before_it_is_restored_from() -> None:
    assert progress("s3://sp/savepoint-1").state is SavepointState.COMPLETED
    missing = progress("s3://sp/savepoint-2")
    assert missing.state is SavepointState.LOST and "no _metadata object" in missing.detail
    unusable = progress("<checkpoint-not-externally-addressable>")
    assert unusable.state is SavepointState.LOST and "cannot be restored" in unusable.detail
    assert progress("").state is SavepointState.LOST


# -- a status change Flink pushed ----------------------------------------------------------------
class Cluster:
    """Flink's REST API as far as observing a running attempt needs it."""

    def __init__(self, state: str) -> None:
        self.state_text = state
        self.asked: list[bool] = []  # `listable` of each state read

    def watch(self, job_id: str, wake: Any) -> None:
        pass

    def state(self, job_id: str, *, listable: bool, since: float) -> tuple[str | None, bool]:
        self.asked.append(listable)
        return self.state_text, listable

    def attempts(self, since: float = float("-inf")) -> dict[str, str]:
        return {}

    def root_exception(self, job_id: str) -> str:
        return ""

    def restart_count(self, job_id: str) -> int | None:
        return None

    def checkpoints(self, job_id: str) -> None:
        return None


def watching(state: str) -> tuple[Observer, Cluster, list[float], Any]:
    now = [100.0]
    observer = Observer("orders", "worker-a", lambda: None, lambda: Clock(1e9, now[0]))
    flink = Cluster(state)
    target = cast(DeploymentTarget, flink)

    def look(pushed: PushedEvent | None) -> FlinkView:
        return observer.observe(record(), status(), target, Memory(), None, None,
                                pushed=pushed).flink

    return observer, flink, now, look


def push(state: JobState, attempt: int = 3, sequence: int = 7) -> PushedEvent:
    return PushedEvent(job_id(attempt), JobState.RUNNING, state, 1e9, "boom", sequence)


def test_a_push_makes_the_cycle_ask_the_rest_api_which_decides() -> None:
    _, flink, now, look = watching("RUNNING")
    assert look(None).pushed is None and flink.asked == [True]  # the shared listing
    failed = push(JobState.FAILED)
    view = look(failed)
    assert flink.asked[-1] is False, "a push is checked against the REST API, not a listing"
    assert view.state is JobState.RUNNING and view.pushed is not None
    assert not view.pushed.confirmed_by(view.state)  # the decision looks again soon
    flink.state_text = "FAILED"
    now[0] += 0.02
    view = look(failed)
    assert view.state is JobState.FAILED and view.pushed is not None
    assert view.pushed.waited == pytest.approx(0.02)
    assert look(failed).pushed is None, "a confirmed push is not news any more"
    assert flink.asked[-1] is True


def test_a_push_the_rest_api_never_confirms_is_let_go() -> None:
    _, flink, now, look = watching("RUNNING")
    stale = push(JobState.FAILED)
    assert look(stale).pushed is not None
    now[0] += PUSH_CONFIRM_WINDOW
    assert look(stale).pushed is None, "not looked for again and again"
    assert look(stale).pushed is None and flink.asked[-1] is True
    assert look(push(JobState.FAILED, sequence=8)).pushed is not None, "a new push is news"


def test_a_push_about_another_attempt_is_not_news() -> None:
    _, flink, _, look = watching("RUNNING")
    assert look(push(JobState.FAILED, attempt=2)).pushed is None
    assert flink.asked == [True]
