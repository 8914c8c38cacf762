"""Master high availability, worker loss and the worker pool, on a real ZooKeeper, a real Flink
session cluster and real master and worker processes: losing a master or a worker never
restarts a Flink job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from common.flink.jobids import flink_job_id
from common.store.zookeeper import Store
from tests.stack import ControlPlane
from tests.waiting import holds_for, wait_until

pytestmark = pytest.mark.e2e


def running(store: Store, name: str) -> bool:
    return store.status(name)[0].phase == "Running"


def owner_of(store: Store, name: str) -> str | None:
    owner = store.owner(name)
    return owner[0] if owner else None


def test_leader_sigkill_standby_leads_and_the_job_keeps_running(
    control: ControlPlane, store: Store
) -> None:
    job = control.write_job("ha-leader")
    control.start_master("master-a")
    wait_until(lambda: store.leader_id() == "master-a", 20, "master-a to lead")
    control.start_master("master-b")
    control.start_worker()
    wait_until(lambda: running(store, "ha-leader"), 90, "the job RUNNING")

    killed = time.monotonic()
    control.signal("master-a", signal.SIGKILL)
    wait_until(lambda: store.leader_id() == "master-b", control.session_timeout + 1,
               "master-b to lead within the session timeout plus 1 s")
    took = time.monotonic() - killed
    control.write_job("ha-after-failover")
    wait_until(lambda: store.job("ha-after-failover"), 10, "the new leader to sync config")

    assert took <= control.session_timeout + 1
    assert control.cluster.running_ids("ha-leader") == [job]
    assert store.status("ha-leader")[0].attempt == 1


def owned_by_a_with_spare_b(control: ControlPlane, store: Store, name: str) -> str:
    """A RUNNING job owned by worker-a, with worker-b registered as a warm spare."""
    job = control.write_job(name)
    control.start_master()
    control.start_worker("worker-a")
    wait_until(lambda: owner_of(store, name) == "worker-a", 60, "worker-a to own it")
    control.start_worker("worker-b")
    wait_until(lambda: "worker-b" in store.workers(), 20, "the spare to register")
    wait_until(lambda: running(store, name), 90, "the job RUNNING")
    return job


def test_worker_sigkill_a_spare_owns_the_job_without_a_flink_restart(
    control: ControlPlane, store: Store
) -> None:
    job = owned_by_a_with_spare_b(control, store, "ha-worker")

    killed = time.monotonic()
    control.signal("worker-a", signal.SIGKILL)
    wait_until(lambda: owner_of(store, "ha-worker") == "worker-b",
               control.session_timeout + 1, "the spare to own the job")
    assert time.monotonic() - killed <= control.session_timeout + 1
    holds_for(lambda: control.cluster.running_ids("ha-worker") == [job], 3,
              "the same Flink job running alone")
    assert store.status("ha-worker")[0].attempt == 1


def test_worker_sigterm_hands_the_job_over_within_two_seconds(
    control: ControlPlane, store: Store
) -> None:
    job = owned_by_a_with_spare_b(control, store, "ha-sigterm")

    control.signal("worker-a", signal.SIGTERM)
    wait_until(lambda: owner_of(store, "ha-sigterm") == "worker-b", 2.0,
               "worker-b to own the job within 2 s of the SIGTERM")
    holds_for(lambda: control.cluster.running_ids("ha-sigterm") == [job], 2,
              "the same Flink job running alone")


def test_without_any_master_past_every_timeout_the_worker_still_restarts_failed_jobs(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    """No master leads for longer than twice the ZooKeeper session timeout after the last
    one's session ended: every entitlement a master could give (its election node, an
    assignment it keeps fresh) would have lapsed twice over, yet the worker restarts two
    failures from their newest checkpoints and keeps the job running."""
    absence = 2 * control.session_timeout
    marker = tmp_path / "fail-once"
    first = control.write_job("no-master", args=["--fail-marker", str(marker)])
    control.start_master()
    control.start_worker()
    wait_until(lambda: control.cluster.completed_checkpoint_id(first) >= 1, 90,
               "a checkpoint of attempt 1")
    control.signal("master-a", signal.SIGKILL)
    control.processes["master-a"].wait(10)
    wait_until(lambda: store.leader_id() is None, control.session_timeout + 2,
               "ZooKeeper to drop the dead master")
    masterless = time.monotonic()

    for attempt in (1, 2):
        current, following = flink_job_id("no-master", attempt), flink_job_id("no-master",
                                                                               attempt + 1)
        wait_until(lambda: control.cluster.completed_checkpoint_id(current) >= 1, 60,  # noqa: B023
                   f"a checkpoint of attempt {attempt}")
        marker.touch()
        wait_until(lambda: control.cluster.job_state(following) == "RUNNING", 60,  # noqa: B023
                   f"attempt {attempt + 1} RUNNING with no master")
        control.cluster.restored_from_newest(current, following)
        wait_until(lambda: running(store, "no-master"), 10, "the status to say Running")
    holds_for(lambda: store.leader_id() is None and running(store, "no-master"),
              max(0.0, absence - (time.monotonic() - masterless)), "no master, the job running")
    assert time.monotonic() - masterless >= absence
    assert control.cluster.running_ids("no-master") == [flink_job_id("no-master", 3)]


def test_local_runtime_keeps_the_pool_with_a_warm_spare(
    control: ControlPlane, store: Store
) -> None:
    control.write_job("pooled")
    control.start_master("master-a", "--runtime", "local", "--spare-workers", "1")
    wait_until(lambda: len(store.workers()) == 2 and store.workers(), 60,
               "one worker for the job and one spare")
    wait_until(lambda: running(store, "pooled"), 90, "the job RUNNING")
    owner = owner_of(store, "pooled")
    assert owner is not None
    spare = next(w for w in store.workers() if w != owner)

    os.kill(store.workers()[owner].pid, signal.SIGKILL)
    wait_until(lambda: owner_of(store, "pooled") == spare, control.session_timeout + 2,
               "the warm spare to own the job")
    replacement = wait_until(
        lambda: [w for w in store.workers() if w not in (owner, spare)], 30,
        "the master to start a new spare")
    assert len(replacement) == 1 and len(store.workers()) == 2
    assert store.status("pooled")[0].attempt == 1
