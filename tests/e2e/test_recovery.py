"""The worker's job state machine on a real ZooKeeper and a real Flink session cluster:
recovery from the newest checkpoint, adoption, the restart policy, failure classes, fencing,
orphans and savepoints."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from common.errors import JobAlreadySubmitted
from common.flink.client import FlinkClient
from common.flink.jobids import flink_job_id
from common.spec.models import FlinkJob
from common.store.records import JobRecord, JobStatus, Phase
from common.store.zookeeper import Store
from tests.stack import ControlPlane
from tests.tcpproxy import TcpProxy
from tests.waiting import holds_for, wait_until
from worker.clients import FlinkClients
from worker.decide.decisions import Decision, Resubmit
from worker.fencing import ConnectionGuard
from worker.programs.jars import JarCache
from worker.supervisor import JobSupervisor
from worker.targets.session import SessionTargets, run_request

pytestmark = pytest.mark.e2e


def phase_is(store: Store, name: str, phase: str) -> JobStatus | None:
    status = store.status(name)[0]
    return status if status.phase == phase else None


def test_restarted_worker_adopts_the_running_job(control: ControlPlane, store: Store) -> None:
    first = control.write_job("adopt-me")
    control.start_master()
    control.start_worker()
    wait_until(lambda: phase_is(store, "adopt-me", "Running"), 90, "attempt 1 RUNNING")

    control.signal("worker-a", signal.SIGTERM)
    control.processes["worker-a"].wait(15)
    assert store.owner("adopt-me") is None, "SIGTERM hands the job back at once"
    control.start_worker("worker-a")
    wait_until(lambda: store.owner("adopt-me"), 15, "the restarted worker to own the job")

    holds_for(lambda: control.cluster.running_ids("adopt-me") == [first], 3,
              "the same Flink job running alone")
    status = store.status("adopt-me")[0]
    assert status.attempt == 1 and status.restarts == 0 and status.phase == "Running"
    assert control.cluster.submissions("adopt-me") == [first]


def test_racing_submissions_of_one_attempt_make_one_flink_job(
    control: ControlPlane, store: Store
) -> None:
    """A retry, or a second worker, submitting an attempt Flink already has adopts it."""
    name = "race"
    document = FlinkJob.model_validate({
        "apiVersion": "flinksched/v1", "kind": "FlinkJob", "metadata": {"name": name},
        "spec": {"job": {"jarURI": control.cluster.example_jar.as_uri(),
                         "entryClass": "dev.flinksched.examples.StatefulCounter"}}})
    record = JobRecord(name, document.spec.model_dump(mode="json"),
                       {"metadata": {"name": "default"},
                        "spec": {"restUrl": control.cluster.rest_url}}, 1, "h", "test")
    store.ensure_layout()
    leader = store.join_election("test-leader")
    store.put_job(record, leader, create=True)
    owner = store.claim_ownership(name, "worker-a", 1)
    _, version = store.status(name)
    claimed = JobStatus(phase=Phase.SUBMITTING, attempt=1, flink_job_id=flink_job_id(name, 1),
                        submit_pending=True, worker="worker-a")
    store.write_status(name, claimed, version, owner)

    clients = FlinkClients()
    jars = JarCache(control.workdir / "jars")
    supervisor = JobSupervisor(store, name, owner, ConnectionGuard(store, 3.0),
                               SessionTargets(clients, jars))
    supervisor.actor.status()
    other = FlinkClient(control.cluster.rest_url)
    body = run_request(record, claimed.flink_job_id, "")
    jar_id = jars.jar_id(other, record.spec["job"]["jarURI"])
    outcomes: list[str] = []

    def other_worker() -> None:
        try:
            other.run_jar(jar_id, body)
            outcomes.append("accepted")
        except JobAlreadySubmitted:
            outcomes.append("already submitted")

    racer = threading.Thread(target=other_worker)
    racer.start()
    try:
        message = supervisor.actor.carry_out(
            Decision(claimed, Resubmit(), "submitting"), record, supervisor.target(record)).message
    finally:
        racer.join(30)
        clients.close()
        other.close()
    outcomes.append("already submitted" if "already submitted" in message else "accepted")

    assert sorted(outcomes) == ["accepted", "already submitted"], (outcomes, message)
    assert control.cluster.submissions(name) == [claimed.flink_job_id]
    wait_until(lambda: control.cluster.job_state(claimed.flink_job_id) == "RUNNING", 60,
               "the one job to run")
    assert store.status(name)[0].attempt == 1


def test_job_failing_on_every_start_reaches_crash_loop_with_backoff(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "always"
    marker.touch()
    control.write_job("crasher", args=["--fail-always-marker", str(marker)],
                      restartPolicy={"maxRestarts": 3, "window": "10m",
                                     "backoff": {"initial": "0s", "max": "2s"}})
    control.start_master()
    control.start_worker()
    status = wait_until(lambda: phase_is(store, "crasher", Phase.CRASH_LOOP), 120,
                        "CrashLoopBackOff")

    assert status.attempt == 4, "the first start and maxRestarts restarts"
    times = status.restart_times
    assert len(times) == 3
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 2.0, "backoff between restarts"
    assert "injected failure" in status.last_failure or "FAILED" in status.last_failure
    holds_for(lambda: store.status("crasher")[0].attempt == 4, 3, "no restart past the policy")


def test_flink_internal_restarts_past_the_policy_are_a_crash_loop(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "always"
    marker.touch()
    first = control.write_job(
        "inner-loop", args=["--fail-always-marker", str(marker)],
        config={"restart-strategy.type": "fixed-delay",
                "restart-strategy.fixed-delay.attempts": "1000",
                "restart-strategy.fixed-delay.delay": "200ms"},
        restartPolicy={"maxRestarts": 3, "window": "10m"})
    control.start_master()
    control.start_worker()
    status = wait_until(lambda: phase_is(store, "inner-loop", Phase.CRASH_LOOP), 90,
                        "CrashLoopBackOff from Flink's own restarts")
    assert status.reason.startswith("Flink restarted attempt 1")
    assert status.attempt == 1
    wait_until(lambda: control.cluster.job_state(first) == "CANCELED", 30,
               "the crash-looping attempt to be cancelled")


def test_bad_entry_class_is_submit_failed_without_a_retry_storm(
    control: ControlPlane, store: Store
) -> None:
    control.write_job("bad-class", entry_class="com.example.DoesNotExist",
                      restartPolicy={"maxRestarts": 2, "backoff": {"initial": "0s", "max": "1s"}})
    control.start_master()
    control.start_worker()
    wait_until(lambda: phase_is(store, "bad-class", Phase.SUBMIT_FAILED), 60, "SubmitFailed")
    status = wait_until(lambda: phase_is(store, "bad-class", Phase.CRASH_LOOP), 60,
                        "CrashLoopBackOff")

    assert "ClassNotFoundException: com.example.DoesNotExist" in status.last_failure
    assert status.attempt == 3, "the first submission and maxRestarts retries, no more"
    holds_for(lambda: store.status("bad-class")[0].attempt == 3, 3, "no further submissions")
    assert control.cluster.submissions("bad-class") == []
    events = [e["message"] for e in store.events("bad-class")]
    assert sum("rejected: java.lang.ClassNotFoundException" in m for m in events) == 3


def test_partitioned_worker_submits_nothing_then_recovers_after_heal(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "fail-once"
    first = control.write_job("cut-off", args=["--fail-marker", str(marker)])
    zk_port = int(control.cluster.zk_hosts.rsplit(":", 1)[1])
    proxy = TcpProxy(zk_port)
    try:
        control.start_master()
        control.start_worker(zk=f"127.0.0.1:{proxy.port}")
        wait_until(lambda: control.cluster.completed_checkpoint_id(first) >= 1, 90,
                   "a checkpoint of attempt 1")

        proxy.partition()
        marker.touch()
        wait_until(lambda: control.cluster.job_state(first) == "FAILED", 30, "attempt 1 to fail")
        holds_for(lambda: control.cluster.submissions("cut-off") == [first],
                  control.session_timeout + 3, "no submission while cut off")
        assert "paused" in control.log("worker-a") or "SUSPENDED" in control.log("worker-a")

        proxy.heal()
        second = flink_job_id("cut-off", 2)
        wait_until(lambda: control.cluster.job_state(second) == "RUNNING", 60,
                   "attempt 2 RUNNING after the partition healed")
        control.cluster.restored_from_newest(first, second)
    finally:
        proxy.close()


def test_orphan_attempts_are_cancelled(control: ControlPlane, store: Store) -> None:
    control.write_job("has-orphan")
    control.start_master()
    control.start_worker()
    wait_until(lambda: phase_is(store, "has-orphan", "Running"), 90, "attempt 1 RUNNING")

    record = store.job("has-orphan")
    assert record is not None
    orphan = flink_job_id("has-orphan", 99)
    client = FlinkClient(control.cluster.rest_url)
    try:
        jar_id = JarCache(control.workdir / "jars").jar_id(client, record.spec["job"]["jarURI"])
        client.run_jar(jar_id, run_request(record, orphan, ""))
    finally:
        client.close()

    wait_until(lambda: control.cluster.job_state(orphan) == "CANCELED", 30,
               "the orphan to be cancelled")
    assert control.cluster.running_ids("has-orphan") == [flink_job_id("has-orphan", 1)]
    assert any(f"cancelled orphan {orphan}" in e["message"] for e in store.events("has-orphan"))


def test_savepoint_schedule_keeps_only_the_newest(
    control: ControlPlane, store: Store
) -> None:
    control.write_job("saver", savepoints={"schedule": "2s", "retain": 2})
    control.start_master()
    control.start_worker()

    def disposed() -> list[str]:
        return [e["message"].split()[2] for e in store.events("saver")
                if e["message"].startswith("disposed savepoint")]

    paths = wait_until(lambda: disposed() if len(disposed()) >= 2 else None, 90,
                       "two disposals")
    kept = store.status("saver")[0].savepoints
    assert len(kept) == 2
    for savepoint in kept:
        assert Path(savepoint.path.removeprefix("file:")).is_dir()
    for path in paths:
        wait_until(lambda: not Path(path.removeprefix("file:")).exists(), 30,  # noqa: B023
                   f"{path} to be gone from disk")


def test_restart_command_makes_a_new_attempt_from_the_newest_checkpoint(
    control: ControlPlane, store: Store
) -> None:
    first = control.write_job("restart-me")
    control.start_master()
    control.start_worker()
    wait_until(lambda: control.cluster.completed_checkpoint_id(first) >= 2, 90,
               "checkpoints of attempt 1")
    store.add_command("restart-me", "restart", by="tester")

    second = flink_job_id("restart-me", 2)
    wait_until(lambda: control.cluster.job_state(second) == "RUNNING", 60, "attempt 2 RUNNING")
    assert control.cluster.job_state(first) == "CANCELED"
    restored = control.cluster.restored_from_newest(first, second)
    assert store.commands("restart-me") == []
    status = store.status("restart-me")[0]
    assert status.restart_times == (), "a requested restart is not a failure"
    events = [e["message"] for e in store.events("restart-me")]
    assert f"restarted attempt 2 from chk-{restored['id']} after restart requested by tester" in (
        m.split(";")[0] for m in events)



def test_job_suspended_in_its_yaml_is_never_submitted(
    control: ControlPlane, store: Store
) -> None:
    control.write_job("yaml-suspended", state="suspended")
    control.start_master()
    control.start_worker()
    status = wait_until(lambda: phase_is(store, "yaml-suspended", "Suspended"), 60,
                        "the job held as Suspended")
    assert status.reason == "suspended in the job spec" and status.attempt == 0
    holds_for(lambda: control.cluster.submissions("yaml-suspended") == [], 3,
              "nothing submitted to Flink")


def test_foreign_or_corrupt_zookeeper_data_is_skipped_not_a_crash_loop(
    control: ControlPlane, store: Store
) -> None:
    """Junk where a job record, a status, an override and a worker registration belong:
    logged and skipped, while the good job runs and no process dies."""
    zk = store.zk
    zk.ensure_path(f"{control.root}/jobs")
    zk.create(f"{control.root}/jobs/junk-job", b"\x00\xffnot json")
    zk.create(f"{control.root}/jobs/junk-job/status", b"[1, 2")
    zk.ensure_path(f"{control.root}/overrides")
    zk.create(f"{control.root}/overrides/good-job", b"<html>")
    zk.ensure_path(f"{control.root}/workers")
    zk.create(f"{control.root}/workers/ghost", b"{\"slots\": \"many\"}")
    first = control.write_job("good-job")
    master = control.start_master()
    worker = control.start_worker(slots=2)
    wait_until(lambda: control.cluster.job_state(first) == "RUNNING", 120, "good-job RUNNING")
    wait_until(lambda: store.status("good-job")[0].phase == "Running", 30, "good-job Running")
    logs = control.log("master-a") + control.log("worker-a")
    assert "junk-job" in logs, "the junk record was not reported"
    assert master.poll() is None and worker.poll() is None
    assert "Traceback" not in logs
