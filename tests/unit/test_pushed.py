"""What Flink's status listener writes is checked before a worker looks at it."""

from __future__ import annotations

import json

import pytest

from common.errors import StoreError
from common.flink.jobids import flink_job_id
from common.flink.jobstate import JobState
from common.store.pushed import Watching, parse_event, parse_heartbeat, push_health


def event(**fields: object) -> bytes:
    value = {"jobId": flink_job_id("orders", 4), "from": "RUNNING", "to": "FAILED",
             "time": 1_800_000_000_123, "cause": "java.lang.IllegalStateException: boom",
             "cluster": "default", "sequence": 12, **fields}
    return json.dumps(value).encode()


def test_an_event_of_one_of_the_jobs_attempts_is_read_whole() -> None:
    pushed = parse_event("orders", event())
    assert pushed is not None
    assert (pushed.job_id, pushed.previous, pushed.state) == (
        flink_job_id("orders", 4), JobState.RUNNING, JobState.FAILED)
    assert pushed.at == pytest.approx(1_800_000_000.123) and pushed.sequence == 12
    assert parse_event("orders", b"") is None  # the node as the worker creates it


@pytest.mark.parametrize(("data", "problem"), [
    (event(jobId=flink_job_id("payments", 4)), "not one of this job's"),
    (event(jobId="not-a-job-id"), "not one of this job's"),
    (event(to="EXPLODED"), "not a state Flink reports"),
    (event(time="soon"), "time 'soon' is not a non-negative number"),
    (event(sequence=-1), "sequence -1"),
    (b"\x00\x01", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
])
def test_an_event_that_is_not_one_of_the_jobs_status_changes_is_rejected_saying_why(
    data: bytes, problem: str
) -> None:
    with pytest.raises(StoreError, match=problem):
        parse_event("orders", data)


def test_a_cluster_is_watched_by_push_only_while_its_heartbeat_is_fresh() -> None:
    beat = parse_heartbeat("default", json.dumps(
        {"interval": 1000, "sent": 5, "dropped": 2, "failed": 0, "flinkVersion": "2.3.0"}
    ).encode())
    assert push_health(beat, written=100.0, now=104.9).watching is Watching.PUSH
    silent = push_health(beat, written=100.0, now=105.1)  # 3 intervals + 2 s
    assert silent.watching is Watching.SILENT and "listener silent" in silent.describe()
    assert "dropped 2" in silent.describe()
    assert push_health(None, 0.0, 200.0).describe() == "poll only"
    with pytest.raises(StoreError, match="interval"):
        parse_heartbeat("default", b'{"interval": 0}')
