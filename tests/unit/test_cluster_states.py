"""The worker's shared listing of a cluster, against a client whose listing the test holds
back: a late listing is waited for, not asked around."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from common.errors import FlinkUnreachable
from common.flink.jobids import flink_job_id, name_prefix
from tests.waiting import holds_for, wait_until
from worker.clients import ClusterStates
from worker.decide.orphans import orphan_ids

JOB = flink_job_id("late", 1)


class HeldListing:
    """Answers GET /jobs only when the test lets it."""

    rest_url = "http://cluster.invalid"

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self.asked = 0
        self.answer: list[dict[str, Any]] = [{"id": JOB, "status": "RUNNING"}]
        self.fail = False
        self.encoded = self.decoded = 0

    def job_listing(self) -> bytes:
        self.asked += 1
        self.gate.acquire()
        if self.fail:
            raise FlinkUnreachable("GET /jobs: connection refused")
        self.encoded += 1
        return json.dumps({"jobs": self.answer}).encode()

    def parse_job_listing(self, body: bytes) -> list[dict[str, Any]]:
        self.decoded += 1
        return list(json.loads(body)["jobs"])


@pytest.fixture
def held() -> Iterator[tuple[HeldListing, ClusterStates]]:
    client = HeldListing()
    states = ClusterStates(client)  # type: ignore[arg-type]
    yield client, states
    states.close()
    for _ in range(10):
        client.gate.release()


def asked_in_background(states: ClusterStates, **kwargs: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {}

    def ask() -> None:
        answer["state"] = states.listed("late", JOB, 0.5, **kwargs)

    threading.Thread(target=ask, daemon=True).start()
    return answer


def caller_waiting(client: HeldListing, states: ClusterStates) -> dict[str, Any]:
    """A supervisor that asked while the listing it needs is held back: still waiting."""
    states.watch("late", JOB, 0.05, lambda: None)
    wait_until(lambda: client.asked == 1, 5, "the listing asked for")
    answer = asked_in_background(states)
    holds_for(lambda: "state" not in answer, 0.4, "the caller waiting for the listing")
    return answer


def test_a_listing_on_its_way_is_waited_for(held: tuple[HeldListing, ClusterStates]) -> None:
    client, states = held
    answer = caller_waiting(client, states)
    client.gate.release()
    wait_until(lambda: "state" in answer, 5, "the caller answered by the listing")
    assert answer["state"] == "RUNNING"


def test_a_listing_asked_for_before_the_submission_is_not_waited_for(
    held: tuple[HeldListing, ClusterStates],
) -> None:
    client, states = held
    states.watch("late", JOB, 0.05, lambda: None)
    wait_until(lambda: client.asked == 1, 5, "the listing asked for")
    started = time.monotonic()
    assert states.listed("late", JOB, 0.5, since=time.monotonic()) is None
    assert time.monotonic() - started < 1.0


def test_a_listing_thread_late_to_ask_again_is_told_to_ask_now(
    held: tuple[HeldListing, ClusterStates],
) -> None:
    """A loaded worker's listing thread overran its pause: the caller neither takes the old
    listing nor asks for its job on its own, it has the thread list now and waits for that."""
    client, states = held
    submitted = time.monotonic()
    states.watch("late", JOB, 3600, lambda: None)  # the thread's next listing: in an hour
    wait_until(lambda: client.asked == 1, 5, "the first listing asked for")
    client.gate.release()
    assert states.listed("late", JOB, 3600, since=submitted) == "RUNNING"
    client.answer = [{"id": JOB, "status": "FAILED"}]
    answer: dict[str, Any] = {}

    def ask() -> None:  # any listing is too old for it
        answer["state"] = states.listed("late", JOB, 0.0, since=submitted)

    threading.Thread(target=ask, daemon=True).start()
    wait_until(lambda: client.asked == 2, 5, "the thread told to list now")
    assert "state" not in answer, "answered before the listing it waits for"
    client.gate.release()
    wait_until(lambda: "state" in answer, 5, "the caller answered by the new listing")
    assert answer["state"] == "FAILED"


def test_failing_listings_send_callers_to_ask_for_themselves(
    held: tuple[HeldListing, ClusterStates],
) -> None:
    client, states = held
    client.fail = True
    states.watch("late", JOB, 0.05, lambda: None)
    client.gate.release()  # the first listing fails
    wait_until(lambda: client.asked == 2, 5, "a second listing asked for")
    started = time.monotonic()
    assert states.listed("late", JOB, 0.5) is None
    assert time.monotonic() - started < 1.0, "waited for a listing while listings fail"


def test_a_stopped_supervisor_stops_waiting(held: tuple[HeldListing, ClusterStates]) -> None:
    client, states = held
    answer = caller_waiting(client, states)
    states.unwatch("late")
    wait_until(lambda: "state" in answer, 5, "the caller released")
    assert answer["state"] is None


def test_orphans_come_from_the_listing_grouped_by_job(
    held: tuple[HeldListing, ClusterStates],
) -> None:
    client, states = held
    mine = [flink_job_id("late", n) for n in (1, 2, 3)]
    client.answer = [{"id": mine[0], "status": "RUNNING"}, {"id": mine[1], "status": "CANCELED"},
                     {"id": mine[2], "status": "RESTARTING"},
                     {"id": flink_job_id("other", 7), "status": "RUNNING"}]
    client.gate.release()
    attempts = states.listed_attempts(name_prefix("late"))
    assert attempts == {mine[0]: "RUNNING", mine[1]: "CANCELED", mine[2]: "RESTARTING"}
    assert orphan_ids(attempts, "late", 3) == [mine[0]]
    assert states.listed_attempts(name_prefix("nobody")) == {}


def test_attempts_come_from_a_listing_asked_for_after_the_submission(
    held: tuple[HeldListing, ClusterStates],
) -> None:
    """A listing of a moment before a restart shows the failed attempt still starting: were
    it the evidence, the restart would be taken for a lost status and that attempt adopted."""
    client, states = held
    first, second = flink_job_id("late", 1), flink_job_id("late", 2)
    client.answer = [{"id": first, "status": "INITIALIZING"}]
    client.gate.release()
    assert states.listed_attempts(name_prefix("late")) == {first: "INITIALIZING"}
    submitted = time.monotonic()
    client.answer = [{"id": first, "status": "FAILED"}, {"id": second, "status": "RUNNING"}]
    client.gate.release()
    assert states.listed_attempts(name_prefix("late"), since=submitted) == {
        first: "FAILED", second: "RUNNING"}


def test_a_listing_like_the_last_is_not_decoded_again(
    held: tuple[HeldListing, ClusterStates],
) -> None:
    client, states = held
    woken = threading.Event()
    states.watch("late", JOB, 0.01, woken.set)
    for _ in range(5):
        client.gate.release()
    wait_until(lambda: client.encoded == 5, 5, "five listings answered")
    assert woken.is_set() and states.listed("late", JOB, 5.0) == "RUNNING"
    assert client.decoded == 1, f"{client.decoded} decodings of one unchanged listing"

    woken.clear()
    client.answer = [{"id": JOB, "status": "FAILED"}]
    client.gate.release()
    assert woken.wait(5), "a changed listing did not wake the job's supervisor"
    assert states.listed("late", JOB, 5.0) == "FAILED" and client.decoded == 2
