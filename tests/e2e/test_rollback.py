"""Broken upgrades on the real stack: each is rolled back to the last stable spec, from the
savepoint the upgrade took, once; the next good generation is applied on top.

A job here is stable after 3 s RUNNING with a checkpoint of its own (the spec's stableAfter;
1 min by default), so a test upgrades it within seconds of its start.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.store.records import JobStatus, Phase, RollbackTrigger
from common.store.zookeeper import Store
from tests.stack import OWN_CLUSTER, OWN_CLUSTER_START_SECONDS, ControlPlane
from tests.waiting import holds_for, wait_until

pytestmark = pytest.mark.e2e

ROLLBACK = {"stableAfter": "3s", "readinessTimeout": "60s"}
COUNTER = "dev.flinksched.examples.StatefulCounter"


def messages(store: Store, name: str) -> list[str]:
    return [str(event["message"]) for event in store.events(name)]


def stable(control: ControlPlane, store: Store, name: str, **job: Any) -> JobStatus:
    """Generation 1 written, master and worker started, attempt 1 proven stable."""
    control.write_job(name, rollback=ROLLBACK, **job)
    control.start_master()
    control.start_worker()

    def proven() -> JobStatus | None:
        status = store.status(name)[0]
        return status if status.phase == Phase.RUNNING and status.stable_attempt == 1 else None

    status = wait_until(proven, OWN_CLUSTER_START_SECONDS, "generation 1 stable")
    assert store.stable(name) is not None
    return status


def rolled_back_running(store: Store, name: str) -> JobStatus | None:
    status = store.status(name)[0]
    return status if (status.phase == Phase.ROLLED_BACK and status.observed_generation == 1
                      and status.rollback is not None
                      and status.attempt == status.rollback.attempt) else None


def restored_savepoint(control: ControlPlane, status: JobStatus) -> str:
    """The path Flink says the attempt restored, once it says so."""
    restored = wait_until(lambda: (control.cluster.checkpoints(status.flink_job_id)
                                   .get("latest") or {}).get("restored"), 30, "a restore")
    assert restored["is_savepoint"], restored
    return str(restored["external_path"])


def live_attempts(control: ControlPlane, name: str) -> list[str]:
    jobs = (control.cluster.get("/jobs") or {}).get("jobs", [])
    prefix = tuple(control.cluster.submissions(name))
    return [j["id"] for j in jobs if j["id"] in prefix
            and j["status"] not in ("FAILED", "CANCELED", "FINISHED")]


REFUSED, FAILED = {RollbackTrigger.REFUSED}, {RollbackTrigger.FAILED}
BROKEN: dict[str, tuple[dict[str, Any], dict[str, Any], set[RollbackTrigger]]] = {
    # generation 1's arguments, generation 2's, and what rolls generation 2 back
    "entry-class-missing": ({}, {"entry_class": "dev.flinksched.examples.NoSuchJob"},
                            REFUSED),
    "arguments-rejected": ({}, {"args": ["--keys", "many"]}, REFUSED),
    "fails-on-every-record": ({}, {"args": ["--fail-always-marker", "MARKER"]}, FAILED),
    # Flink 2.x refuses the submission whose state it cannot map; 1.20 fails the attempt.
    "state-does-not-fit": ({"args": ["--operator-uid", "counter-a"]},
                           {"args": ["--operator-uid", "counter-b"]}, REFUSED | FAILED),
}


def marked(job: dict[str, Any], marker: Path) -> dict[str, Any]:
    return {**job, "args": [str(marker) if a == "MARKER" else a for a in job.get("args", [])]}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_upgrade_rolls_back_to_the_stable_spec_from_the_upgrades_savepoint(
    case: str, control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    first, broken, triggers = BROKEN[case]
    name = f"rb-{case}"[:40]
    marker = tmp_path / "fail-always"
    marker.touch()
    stable(control, store, name, **first)

    control.write_job(name, rollback=ROLLBACK, **marked(broken, marker))
    status = wait_until(lambda: rolled_back_running(store, name), 90, "rolled back, RUNNING")
    rollback = status.rollback
    assert rollback is not None
    assert (rollback.from_generation, rollback.to_generation) == (2, 1)
    assert rollback.trigger in triggers, rollback
    assert "generation 2 rolled back to generation 1" in status.reason
    assert status.submit_hash == store.stable(name).submit_hash  # type: ignore[union-attr]
    # From the savepoint the upgrade took of attempt 1, never from the trial's own state.
    assert status.upgrade_point is not None and status.upgrade_point.kind == "savepoint"
    assert status.restored_from == status.upgrade_point.path
    assert restored_savepoint(control, status).rstrip("/") == status.upgrade_point.path.rstrip(
        "/")
    assert status.rollbacks == 1
    said = messages(store, name)
    assert any(m.startswith("rolling back: generation 2 rolled back") for m in said), said

    # The user's spec is not rewritten: the next generation is an upgrade from the stable one.
    control.write_job(name, rollback=ROLLBACK, **{**first, "args": [*first.get("args", []),
                                                                    "--keys", "9"]})

    def good() -> JobStatus | None:
        now = store.status(name)[0]
        return now if (now.phase == Phase.RUNNING and now.observed_generation == 3
                       and now.rollback is None) else None

    applied = wait_until(good, 90, "generation 3 RUNNING")
    assert applied.attempt > status.attempt
    assert restored_savepoint(control, applied) != status.upgrade_point.path


@pytest.mark.timeout(600)  # three clusters of its own, one after another
def test_a_broken_upgrade_of_a_job_on_a_cluster_of_its_own_rolls_back_there(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    """The same on a cluster of the job's own: the trial's cluster fails and is torn down, the
    stable spec gets a new cluster, restored from the upgrade's savepoint."""
    name = "rb-own"
    marker = tmp_path / "fail-always"
    marker.touch()
    stable(control, store, name, cluster=OWN_CLUSTER)
    control.write_job(name, cluster=OWN_CLUSTER, rollback=ROLLBACK,
                      args=["--fail-always-marker", str(marker)])
    # the trial's cluster, then the stable spec's
    status = wait_until(lambda: rolled_back_running(store, name), 2 * OWN_CLUSTER_START_SECONDS,
                        "rolled back, RUNNING")
    assert status.cluster_url and status.upgrade_point is not None
    assert status.restored_from == status.upgrade_point.path

    def restored() -> dict[str, Any] | None:
        answer = httpx.get(f"{status.cluster_url}/jobs/{status.flink_job_id}/checkpoints",
                           timeout=10)
        found = (answer.json().get("latest") or {}).get("restored") if (
            answer.status_code == 200) else None
        return dict(found) if found else None

    assert wait_until(restored, 30, "the rollback's restore")["is_savepoint"] is True


def test_a_worker_killed_during_a_rollback_leaves_one_rollback_and_no_attempt_after_it(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    """The worker is SIGKILLed once the rollback is decided; the worker that takes the job
    over finishes it, never with two attempts alive; then for 60 s (past the master's syncs
    and every supervisor's cycles) nothing is submitted again."""
    name = "rb-killed"
    marker = tmp_path / "fail-always"
    marker.touch()
    stable(control, store, name)
    control.write_job(name, rollback=ROLLBACK, args=["--fail-always-marker", str(marker)])
    wait_until(lambda: store.status(name)[0].rollback is not None, 90, "the rollback decided")
    control.signal("worker-a", signal.SIGKILL)
    control.start_worker("worker-b")

    def alive_at_most_one() -> JobStatus | None:
        assert len(live_attempts(control, name)) <= 1, live_attempts(control, name)
        status = rolled_back_running(store, name)
        return status if status is not None and status.worker == "worker-b" else None

    status = wait_until(alive_at_most_one, 90, "rolled back by worker-b")
    assert status.rollbacks == 1
    submitted = control.cluster.submissions(name)
    holds_for(lambda: rolled_back_running(store, name) and
              control.cluster.submissions(name) == submitted, 60,
              "rolled back, with nothing submitted after the rollback")


def test_a_stable_generation_that_fails_later_is_restarted_not_rolled_back(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    name = "rb-later"
    marker = tmp_path / "fail-once"
    control.write_job(name, rollback=ROLLBACK, args=["--fail-marker", str(marker)])
    control.start_master()
    control.start_worker()
    wait_until(lambda: store.status(name)[0].stable_attempt == 1, 90, "generation 1 stable")
    control.write_job(name, rollback=ROLLBACK, args=["--fail-marker", str(marker), "--keys", "9"])

    def upgraded_and_stable() -> JobStatus | None:
        status = store.status(name)[0]
        return status if status.observed_generation == 2 and (
            status.stable_attempt == status.attempt) else None

    upgraded = wait_until(upgraded_and_stable, 90, "generation 2 stable")
    marker.touch()

    def restarted() -> JobStatus | None:
        status = store.status(name)[0]
        return status if status.phase == Phase.RUNNING and status.attempt > upgraded.attempt \
            else None

    after = wait_until(restarted, 90, "restarted after the failure")
    assert after.rollback is None and after.rollbacks == 0 and after.observed_generation == 2
    assert "FAILED" in after.last_failure

    # An operator rolls a generation on trial back (its stableAfter keeps it on trial).
    control.write_job(name, rollback={"stableAfter": "10m", "readinessTimeout": "20m"},
                      args=["--fail-marker", str(marker), "--keys", "10"])
    wait_until(lambda: store.status(name)[0].observed_generation == 3 and (
        store.status(name)[0].phase == Phase.RUNNING), 90, "generation 3 RUNNING, on trial")
    assert "on trial     generation 3" in control.cli("describe", name)
    assert "rollback to generation 2 requested" in control.cli("rollback", name)

    def rolled_back_on_request() -> JobStatus | None:
        status = store.status(name)[0]
        return status if (status.phase == Phase.ROLLED_BACK and status.rollback is not None
                          and status.rollback.trigger is RollbackTrigger.REQUESTED
                          and status.observed_generation == 2) else None

    wait_until(rolled_back_on_request, 90, "rolled back on request")
    assert "rolled back  from generation 3" in control.cli("describe", name)


def test_a_trial_never_stable_in_time_rolls_back_and_without_its_restore_point_is_held(
    control: ControlPlane, store: Store
) -> None:
    """Generation 2 runs but takes no checkpoint in time to be proven, so its readinessTimeout
    rolls it back; the savepoint the upgrade started from is gone meanwhile, so the rollback is
    held (RollbackFailed, nothing submitted, nothing running); a fixed generation pushed then
    waits for a restore point until an operator starts it from empty."""
    name = "rb-held"
    stable(control, store, name)
    control.write_job(name, rollback={"stableAfter": "3s", "readinessTimeout": "15s"},
                      # Flink's first checkpoint comes at a random moment between the two.
                      config={"execution.checkpointing.interval": "10min",
                              "execution.checkpointing.min-pause": "10min"})

    def trial_running() -> JobStatus | None:
        status = store.status(name)[0]
        return status if (status.observed_generation == 2 and status.phase == Phase.RUNNING
                          and status.upgrade_point is not None) else None

    trial = wait_until(trial_running, 90, "generation 2 RUNNING, on trial")
    assert trial.upgrade_point is not None and trial.upgrade_point.kind == "savepoint"
    savepoint = Path(trial.upgrade_point.path.removeprefix("file:"))
    assert (savepoint / "_metadata").is_file()
    shutil.rmtree(savepoint)

    def held() -> JobStatus | None:
        status = store.status(name)[0]
        return status if status.phase == Phase.ROLLBACK_FAILED else None

    status = wait_until(held, 60, "RollbackFailed")
    assert status.rollback is not None and status.rollback.trigger is RollbackTrigger.TIMEOUT
    assert "not stable within readinessTimeout 15s" in status.rollback.cause
    assert str(savepoint) in status.reason and "cannot be used" in status.reason
    assert f"flinksched restart {name} --from PATH" in status.reason
    submitted = control.cluster.submissions(name)
    holds_for(lambda: store.status(name)[0].phase == Phase.ROLLBACK_FAILED
              and control.cluster.submissions(name) == submitted
              and not live_attempts(control, name), 5,
              "held: nothing submitted, nothing running")
    said = messages(store, name)
    assert any(m.startswith("rollback to generation 1 failed, job held:") for m in said), said

    # A fixed generation is an upgrade from the stable one, whose only state was that
    # savepoint (Flink discards an attempt's checkpoints once it stopped with a savepoint): it
    # is held for a restore point, never started from empty unasked; asked, it runs.
    control.write_job(name, rollback=ROLLBACK, args=["--keys", "9"])
    wait_until(lambda: store.status(name)[0].phase == Phase.NO_RESTORE_POINT, 60,
               "generation 3 held for a restore point")
    assert control.cluster.submissions(name) == submitted
    control.cli("restart", name, "--from-empty", "--yes")

    def fixed() -> JobStatus | None:
        now = store.status(name)[0]
        return now if (now.phase == Phase.RUNNING and now.observed_generation == 3
                       and now.rollback is None) else None

    assert wait_until(fixed, 90, "generation 3 RUNNING").attempt == 3
