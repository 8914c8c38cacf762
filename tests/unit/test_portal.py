"""The portal's decisions (what a page shows of what was read) and its pages, on a fake store.
The real-stack test drives the pages in Chromium against ZooKeeper (tests/e2e/test_portal.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.errors import FlinkschedError
from common.flink.jobids import flink_job_id
from common.store.records import Checkpoint, JobStatus, Phase, StableSpec
from common.telemetry.endpoints import Endpoints
from scheduler.portal.actions import ActionPolicy, load_tokens, refusal
from scheduler.portal.actions import Request as ActionRequest
from scheduler.portal.app import portal_app
from scheduler.portal.reading import JobData, PortalReader
from scheduler.portal.views import (
    FleetQuery,
    backoff_line,
    changed_fields,
    expand_link,
    fleet_page,
    restore_label,
    timeline,
)
from tests.unit.decisions_util import NAME, NOW, checkpoint, record, status


def row(name: str, phase: str = "Running", **fields: Any) -> dict[str, Any]:
    """A fleet row as `common.telemetry.fleet.status_rows` builds it."""
    return {"name": name, "phase": phase, "desiredState": "running", "override": None,
            "cluster": "default", "ownCluster": False, "attempt": 1, "since": NOW - 60,
            "restarts": 0, "restartsLastHour": 0, "lastCheckpoint": None,
            "checkpointsDurable": True, "observedGeneration": 1, "generation": 1,
            "worker": "worker-a", "labels": {}, "reason": "", "configError": "", **fields}


# -- the fleet ----------------------------------------------------------------------------------
def test_a_fleet_query_survives_its_url_and_says_what_it_did_not_understand() -> None:
    query, problems = FleetQuery.from_params({"name": "ord", "phase": "CrashLoopBackOff",
                                              "label": "team=growth,tier", "sort": "-restarts",
                                              "page": "x"})
    assert problems == ["label 'tier' is not K=V: ignored",
                        "page 'x' is not a positive number: 1 shown"]
    assert (query.labels, query.sort, query.descending, query.page) == (
        (("team", "growth"),), "restarts", True, 1)
    assert query.url() == ("/?name=ord&phase=CrashLoopBackOff&label=team%3Dgrowth"
                           "&sort=-restarts")
    again, none = FleetQuery.from_params(dict(query.params()))
    assert (again, none) == (query, [])
    assert query.sort_url("restarts") == query.url(descending=False)
    assert FleetQuery().url() == "/"


def test_the_fleet_page_filters_sorts_and_pages_server_side_and_counts_the_whole_fleet() -> None:
    rows = [row(f"job-{n:04d}", restarts=n % 7, labels={"team": "a" if n % 2 else "b"})
            for n in range(250)]
    rows.append(row("broken", "CrashLoopBackOff", restarts=9, cluster="other"))
    query, _ = FleetQuery.from_params({"label": "team=a", "sort": "-restarts", "page": "2"})
    page = fleet_page(rows, query, NOW)
    assert (page.total, page.matched, page.pages) == (251, 125, 2)
    assert len(page.rows) == 25
    restarts = [int(r.restarts.split("/")[1]) for r in page.rows]
    assert restarts == sorted(restarts, reverse=True)
    assert dict((phase, n) for phase, n, _ in page.counts) == {"Running": 250,
                                                               "CrashLoopBackOff": 1}
    assert page.clusters == ["default", "other"]
    only, _ = FleetQuery.from_params({"phase": "crashloopbackoff", "page": "9"})
    shown = fleet_page(rows, only, NOW)
    assert [r.name for r in shown.rows] == ["broken"]
    assert shown.rows[0].phase_class == "phase-red"
    assert shown.query.page == 1  # past the last page: the last one
    by_name = fleet_page(rows, FleetQuery(name="JOB-000"), NOW)
    assert [r.name for r in by_name.rows] == [f"job-000{n}" for n in range(10)]


# -- one job ------------------------------------------------------------------------------------
def start(attempt: int, kind: str, restored: str, at: float, cause: str,
          noticed: str = "") -> dict[str, Any]:
    """An attempt's start event as `worker.decide.rules` writes it."""
    extra = {"noticedBy": noticed} if noticed else {}
    return {"ts": at + 0.2, "source": "worker-a", "message": f"attempt {attempt}",
            "attempt": attempt, "start": kind, "restoredFrom": restored, "claimedAt": at,
            "cause": cause, **extra}


def test_the_timeline_chains_each_attempt_to_the_state_it_restored_and_marks_a_break() -> None:
    events = [
        start(1, "first", "", NOW - 300, "its first start"),
        {"ts": NOW - 250, "source": "worker-a", "message": "a savepoint"},  # not a start
        start(2, "failure", checkpoint(1, 5).path, NOW - 200, "Flink FAILED it", "push"),
        start(3, "lost", "", NOW - 100, "the cluster lost it", "poll"),
        start(4, "upgrade", "s3://sp/savepoint-4a2b-1", NOW - 50, "generation 2"),
    ]
    savepoint = Checkpoint("s3://sp/savepoint-4a2b-1", 1, int((NOW - 55) * 1000), "savepoint")
    found = timeline(NAME, events, status(savepoints=(savepoint,)))
    assert [a.number for a in found] == [1, 2, 3, 4]
    assert [a.restored_label for a in found] == ["empty state", "chk-5 of attempt 1",
                                                 "empty state", "savepoint sp-1"]
    assert [a.chain_break for a in found] == [False, False, True, False]
    assert [a.noticed_by for a in found] == ["push", "poll", "", ""]
    assert found[1].ended == NOW - 100 and found[1].duration == "100s"
    assert found[1].ended_how == "lost: the cluster lost it"
    assert found[-1].ended is None and found[-1].kind == "upgrade"


def test_a_restore_point_names_the_attempt_whose_state_it_is() -> None:
    assert restore_label(f"s3://b/ckpt/{flink_job_id(NAME, 7)}/chk-42", NAME) == \
        "chk-42 of attempt 7"
    assert restore_label(f"s3://b/ckpt/{flink_job_id('other', 7)}/chk-42", NAME) == "checkpoint"
    assert restore_label("file:///sp/savepoint-ab12cd-0123", NAME) == "savepoint"
    assert restore_label("", NAME) == "empty state"


def test_the_restart_policy_line_says_which_restart_is_next_and_when() -> None:
    job = record(restartPolicy={"maxRestarts": 10, "window": "600s",
                                "backoff": {"initial": "10s", "max": "300s"}})
    backing_off = status(Phase.RECOVERING, restart_times=(NOW - 100, NOW - 5))
    assert backoff_line(job, backing_off, NOW) == "restart 3 of 10 within 600s, next in 15s"
    running = status(restart_times=(NOW - 700, NOW - 5))
    assert backoff_line(job, running, NOW) == "1 of 10 restarts used within 600s"
    looping = status(Phase.CRASH_LOOP, restart_times=tuple(NOW - n for n in range(10)))
    assert backoff_line(job, looping, NOW).startswith(
        "10 restarts within 600s reached maxRestarts 10")


def test_what_changed_between_two_specs_is_each_differing_leaf() -> None:
    before = {"job": {"parallelism": 2, "args": ["--rate", "5"]}, "state": "running"}
    after = {"job": {"parallelism": 4, "args": ["--rate", "5"], "entryClass": "x.Y"},
             "state": "running"}
    assert changed_fields(before, after) == [("job.entryClass", "(absent)", "x.Y"),
                                             ("job.parallelism", "2", "4")]
    assert changed_fields(before, before) == []


def test_a_link_pattern_is_filled_in_and_quoted() -> None:
    assert expand_link("https://logs/?q=$job&c=${cluster}&a=$attempt&x=$other", "a b/c", "k",
                       3) == "https://logs/?q=a%20b%2Fc&c=k&a=3&x=$other"


# -- reading ------------------------------------------------------------------------------------
class FakeStore:
    """The reads the portal makes, from memory; `fail` makes them raise, `hang` block."""

    def __init__(self) -> None:
        job = record(generation=2, job={"parallelism": 2})
        stable = record(generation=1)
        self.records_ = {NAME: job}
        self.statuses_ = {NAME: status(
            attempt=2, last_checkpoint=checkpoint(2, 8), last_failure="boom: a test failure",
            restored_from=checkpoint(1, 5).path)}
        self.events_ = [start(1, "first", "", NOW - 300, "first start"),
                        start(2, "failure", checkpoint(1, 5).path, NOW - 200, "boom", "push")]
        self.stable_ = StableSpec.of(stable, 1, NOW - 250)
        self.fail: Exception | None = None
        self.writes: list[tuple[str, str, str, str]] = []
        self.hang = threading.Event()
        self.hang.set()
        self.connected = True

    def _read(self) -> None:
        self.hang.wait(10)
        if self.fail:
            raise self.fail

    def job_names(self) -> list[str]:
        self._read()
        return sorted(self.records_)

    def records(self, names: list[str], changed: Any = None) -> dict[str, Any]:
        return {n: self.records_[n] for n in names}

    def statuses(self, names: list[str], changed: Any = None) -> dict[str, JobStatus]:
        return {n: self.statuses_[n] for n in names}

    def owners(self, names: list[str], changed: Any = None) -> dict[str, str]:
        return {n: "worker-a" for n in names}

    def on_session_lost(self, callback: Any) -> None:
        pass

    def worker_ids(self) -> set[str]:
        return {"worker-a"}

    def overrides(self) -> dict[str, Any]:
        return {}

    def config_state(self) -> dict[str, Any]:
        return {}

    def cluster_seen(self, cluster: str) -> None:
        return None

    def leader_id(self) -> str:
        return "master-a"

    def job(self, name: str) -> Any:
        self._read()
        return self.records_.get(name)

    def status(self, name: str) -> tuple[JobStatus, int]:
        return self.statuses_[name], 0

    def owner(self, name: str) -> tuple[str, int]:
        return "worker-a", 0

    def override(self, name: str) -> dict[str, Any]:
        return {"state": "suspended", "by": "alice", "at": NOW - 10, "reason": "incident 12"}

    def events(self, name: str) -> list[dict[str, Any]]:
        return list(self.events_)

    def stable(self, name: str) -> StableSpec:
        return self.stable_

    # the writes of the operations the portal's actions make, recorded
    def add_command(self, name: str, command: str, by: str, **fields: Any) -> str:
        self.writes.append(("command", name, command, by))
        return "c-0000000001"

    def set_override(self, name: str, value: dict[str, Any]) -> None:
        self.writes.append(("override", name, value["state"], value["by"]))

    def clear_override(self, name: str) -> bool:
        self.writes.append(("cleared", name, "", ""))
        return True

    def append_event(self, name: str, source: str, message: str, **extra: Any) -> None:
        self.writes.append(("event", name, source, message))


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def test_a_failed_read_keeps_the_last_data_marked_stale_with_why(store: FakeStore) -> None:
    clock = [NOW]
    reader = PortalReader(store, max_age=2.0, deadline=0.2, clock=lambda: clock[0])  # type: ignore[arg-type]
    first = reader.fleet()
    assert not first.stale and first.leader == "master-a" and first.read_at == NOW
    clock[0] += 1
    assert reader.fleet() is first  # younger than max_age: no read
    clock[0] += 2
    store.fail = ConnectionError("connection refused")
    failed = reader.fleet()
    assert failed.stale and failed.data is first.data and failed.read_at == NOW
    assert failed.error == "reading ZooKeeper failed: connection refused"
    store.fail = None
    store.connected = False
    assert reader.fleet().error == "reading ZooKeeper failed: not connected to ZooKeeper"
    store.connected = True
    store.hang.clear()  # a ZooKeeper that does not answer
    hung = reader.fleet()
    assert hung.error.startswith("ZooKeeper has not answered a read for")
    assert hung.data is first.data
    assert reader.fleet().error.startswith("ZooKeeper has not answered a read for")  # at once
    store.hang.set()
    pending = reader.fleet_slot.pending
    assert pending is not None
    pending.result(timeout=5)  # the hung read ends: the next request takes what it read
    fresh = reader.fleet()
    assert not fresh.stale and fresh.read_at == clock[0]
    reader.close()


def test_a_first_read_still_under_way_says_so_instead_of_blaming_zookeeper(
        store: FakeStore) -> None:
    store.hang.clear()
    clock = [NOW]
    reader = PortalReader(store, deadline=0.1, clock=lambda: clock[0])  # type: ignore[arg-type]
    reader.warm()  # as a master starts: the first read of thousands of jobs takes seconds
    first = reader.fleet()
    assert first.data is None and first.error.startswith("the first read is under way")
    store.hang.set()
    pending = reader.fleet_slot.pending
    assert pending is not None
    pending.result(timeout=5)
    assert not reader.fleet().stale
    reader.close()


def test_a_warm_read_nobody_collected_in_time_is_read_again(store: FakeStore) -> None:
    clock = [NOW]
    reader = PortalReader(store, deadline=1, clock=lambda: clock[0])  # type: ignore[arg-type]
    store.records_.clear()  # a master starts before its first sync: no job yet
    reader.warm()
    pending = reader.fleet_slot.pending
    assert pending is not None
    pending.result(timeout=5)
    store.records_[NAME] = record()  # the sync wrote the jobs; a minute later, a page
    clock[0] += 60
    fleet = reader.fleet()
    assert fleet.data is not None and [r["name"] for r in fleet.data.rows] == [NAME]
    assert fleet.read_at == clock[0]
    reader.close()


# -- the pages ----------------------------------------------------------------------------------
def serve(app: Any) -> Iterator[httpx.Client]:
    """The app mounted on the process's HTTP server, as a master mounts it."""
    endpoints = Endpoints("127.0.0.1", 0)
    endpoints.mount(app)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{endpoints.port}", timeout=10) as client:
            yield client
    finally:
        endpoints.close()


@pytest.fixture
def client(store: FakeStore) -> Iterator[httpx.Client]:
    reader = PortalReader(store, deadline=0.5)  # type: ignore[arg-type]
    yield from serve(portal_app(
        reader, {"logs": "https://logs.example/?job=$job&attempt=$attempt"}, "master-a"))
    reader.close()


def test_the_fleet_page_shows_each_job_with_its_phase_and_how_fresh_it_is(
        client: httpx.Client) -> None:
    page = client.get("/?phase=Running")
    assert page.status_code == 200
    assert f'data-job="{NAME}"' in page.text and 'data-phase="Running"' in page.text
    assert 'data-stale="false"' in page.text and "leader: master-a" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    fragment = client.get("/", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'id="jobs"' in fragment.text
    assert "no job matches" in client.get("/?name=nothing").text


def test_a_job_page_says_why_and_draws_its_restarts_restore_points_and_links(
        client: httpx.Client) -> None:
    page = client.get(f"/jobs/{NAME}")
    assert page.status_code == 200
    text = page.text
    assert "boom: a test failure" in text  # the last failure
    assert "suspended by alice" in text and "incident 12" in text  # the hold, and who
    assert 'data-attempt="2"' in text and "chk-5 of attempt 1" in text
    assert "push" in text  # how attempt 1's failure was noticed
    assert "chk-8" in text  # the newest checkpoint among the restore points
    assert "job.parallelism" in text  # changed from the stable generation 1
    assert "https://logs.example/?job=orders&amp;attempt=2" in text
    assert f"{flink_job_id(NAME, 2)}/overview" in text  # its Flink UI
    assert f"flinksched describe {NAME}" in text
    assert client.get("/jobs/nobody").status_code == 404


def test_the_portal_refuses_every_request_that_is_not_a_read(client: httpx.Client) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in (f"/jobs/{NAME}", "/", "/anything"):
            answer = client.request(method, path)
            assert (answer.status_code, answer.headers["allow"]) == (405, "GET, HEAD"), method
            assert "read-only" in answer.text
    assert client.post("/metrics").status_code == 405
    assert client.get("/metrics").status_code == 200  # the process's own pages beside it


def test_a_page_whose_read_failed_says_stale_and_never_shows_it_as_current(
        store: FakeStore) -> None:
    for client in serve(portal_app(PortalReader(store, max_age=0, deadline=0.5))):  # type: ignore[arg-type]
        assert 'data-stale="false"' in client.get("/").text
        assert 'data-stale="false"' in client.get(f"/jobs/{NAME}").text
        store.fail = ConnectionError("connection refused")
        for path in ("/", f"/jobs/{NAME}"):
            page = client.get(path).text
            assert 'data-stale="true"' in page and "connection refused" in page, path
            assert f'data-job="{NAME}"' in page or "boom: a test failure" in page, path
    for client in serve(portal_app(PortalReader(store, deadline=0.5))):  # type: ignore[arg-type]
        blank = client.get("/").text
        assert "No data: ZooKeeper could not be read" in blank and 'id="jobs"' not in blank


def test_job_data_type_is_what_the_reader_returns(store: FakeStore) -> None:
    reader = PortalReader(store)  # type: ignore[arg-type]
    data = reader.job(NAME).data
    assert isinstance(data, JobData) and data.owner == "worker-a"
    assert replace(data, owner=None).owner is None
    reader.close()


# -- actions ------------------------------------------------------------------------------------
TOKEN = "s3cret-token-of-alice"


def acting_portal(store: FakeStore, **policy: Any) -> Iterator[httpx.Client]:
    return serve(portal_app(PortalReader(store, deadline=2), policy=ActionPolicy(  # type: ignore[arg-type]
        enabled=True, **policy)))


def csrf_of(client: httpx.Client, **headers: str) -> str:
    page = client.get(f"/jobs/{NAME}", headers=headers).text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def code(refused: tuple[int, str] | ActionRequest) -> int:
    assert isinstance(refused, tuple), refused
    return refused[0]


def test_an_action_is_refused_for_whoever_is_unknown_unconfirmed_or_from_elsewhere() -> None:
    policy = ActionPolicy(enabled=True, trusted_header="x-forwarded-user", secret=b"k" * 32)
    good = {"csrf": policy.csrf_token("alice"), "action": "suspend", "confirm": NAME,
            "reason": "incident 12"}
    assert refusal(policy, "alice", NAME, good, "", "portal:9250") == ActionRequest(
        "suspend", "incident 12")
    assert code(refusal(policy, None, NAME, good, "", "h")) == 401
    assert code(refusal(policy, "alice", NAME, good, "https://evil.example", "portal:9250")) == 403
    assert code(refusal(policy, "bob", NAME, good, "", "h")) == 403  # alice's CSRF token
    assert refusal(policy, "alice", NAME, {**good, "confirm": "other"}, "", "h") == (
        400, f"not confirmed: type the job's name, {NAME}, to suspend it")
    assert code(refusal(policy, "alice", NAME, {**good, "reason": " "}, "", "h")) == 400
    assert code(refusal(policy, "alice", NAME, {**good, "action": "delete"}, "", "h")) == 400
    assert code(refusal(ActionPolicy(), "alice", NAME, good, "", "h")) == 405
    assert ActionPolicy(enabled=True).problems()  # actions without any authentication


def test_tokens_are_read_from_name_token_lines_naming_a_bad_line(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# who may act\nalice:{TOKEN}\n\n")
    assert load_tokens(tokens) == {TOKEN: "alice"}
    tokens.write_text(f"alice:{TOKEN}\nbob:short\n")
    with pytest.raises(FlinkschedError, match=r"tokens:2: not NAME:TOKEN"):
        load_tokens(tokens)


def test_an_authenticated_action_goes_through_the_clis_operation_naming_who(
        store: FakeStore) -> None:
    for client in acting_portal(store, trusted_header="x-forwarded-user"):
        alice = {"x-forwarded-user": "alice"}
        anonymous = client.get(f"/jobs/{NAME}").text
        assert "proxy's header" in anonymous and "data-action=" not in anonymous
        form = {"csrf": csrf_of(client, **alice), "action": "suspend", "confirm": NAME,
                "reason": "incident 12"}
        done = client.post(f"/jobs/{NAME}/actions", data=form, headers=alice)
        assert (done.status_code, done.headers["location"]) == (
            303, f"/jobs/{NAME}?requested=suspend")
        assert store.writes == [("override", NAME, "suspended", "alice"),
                                ("event", NAME, "portal alice", "suspended by alice: incident 12")]
        refused = client.post(f"/jobs/{NAME}/actions", data={**form, "csrf": "forged"},
                              headers=alice)
        assert refused.status_code == 403 and len(store.writes) == 2
        nobody = client.post(f"/jobs/{NAME}/actions", data=form)
        assert nobody.status_code == 401 and len(store.writes) == 2
        restart = client.post(f"/jobs/{NAME}/actions", headers=alice,
                              data={**form, "action": "restart"})
        assert restart.status_code == 303
        assert store.writes[2:] == [("command", NAME, "restart", "alice"),
                                    ("event", NAME, "portal alice", "restart requested by alice")]


def test_a_token_signs_in_through_a_cookie_or_a_bearer_header(store: FakeStore) -> None:
    for client in acting_portal(store, tokens={TOKEN: "alice"}):
        assert "Sign in" in client.get(f"/jobs/{NAME}").text
        assert client.post("/login", data={"token": "wrong-token-of-nobody"}).status_code == 401
        signed = client.post("/login", data={"token": TOKEN})
        assert signed.status_code == 303 and "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        assert 'id="who">alice<' in client.get(f"/jobs/{NAME}").text  # the cookie
        client.cookies.clear()
        bearer = {"authorization": f"Bearer {TOKEN}"}
        form = {"csrf": csrf_of(client, **bearer), "action": "savepoint", "confirm": NAME}
        assert client.post(f"/jobs/{NAME}/actions", data=form, headers=bearer).status_code == 303
        assert store.writes[-1] == ("event", NAME, "portal alice", "savepoint requested by alice")


def test_without_actions_enabled_the_action_paths_refuse_a_post(client: httpx.Client,
                                                                 store: FakeStore) -> None:
    for path in (f"/jobs/{NAME}/actions", "/login"):
        assert client.post(path, data={"action": "restart"}).status_code == 405
    assert 'id="actions"' not in client.get(f"/jobs/{NAME}").text
    assert store.writes == []
