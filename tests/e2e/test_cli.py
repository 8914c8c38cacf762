"""The operator CLI: output and exit codes with click's CliRunner, and each operation changing
what Flink runs the way it says, on the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from common.flink.jobids import flink_job_id
from common.store.records import JobStatus
from common.store.zookeeper import Store
from scheduler.cli.main import cli
from tests.stack import REPO, ControlPlane
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

CONTRACT = {"name", "desiredState", "override", "phase", "flinkJobId", "attempt", "worker",
            "since", "restarts", "restartsLastHour", "lastCheckpoint", "generation",
            "observedGeneration", "reason", "labels", "cluster", "source", "commit",
            "removedAt", "configError", "checkpointsDurable", "rejectedRestores",
            "ownCluster", "clusterUrl", "reportedPhase", "supervised", "deployment"}


def run(control: ControlPlane, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--zk", control.cluster.zk_hosts, "--root", control.root,
                                    *args], catch_exceptions=False)


def test_status_json_contract_filters_and_read_commands(
    control: ControlPlane, store: Store
) -> None:
    job = control.write_job("cli-contract")
    control.write_job("cli-other")
    control.start_master()
    control.start_worker("worker-a", slots=2)
    wait_until(lambda: all(store.status(n)[0].phase == "Running"
                           for n in ("cli-contract", "cli-other")), 90, "both jobs RUNNING")
    wait_until(lambda: store.status("cli-contract")[0].last_checkpoint, 30, "a checkpoint")

    rows = json.loads(run(control, "status", "-o", "json").output)
    assert [row["name"] for row in rows] == ["cli-contract", "cli-other"]
    row = rows[0]
    assert set(row) == CONTRACT
    assert row["phase"] == "Running" and row["flinkJobId"] == job and row["attempt"] == 1
    assert row["reportedPhase"] == "Running" and row["supervised"] is True
    assert row["worker"] == "worker-a" and row["desiredState"] == "running"
    assert row["generation"] == row["observedGeneration"] == 1
    assert set(row["lastCheckpoint"]) == {"path", "id", "timestamp", "kind"}
    assert row["checkpointsDurable"] is True and row["rejectedRestores"] == []

    only = json.loads(run(control, "status", "-o", "json", "--phase", "running",
                          "--cluster", "default").output)
    assert len(only) == 2
    assert json.loads(run(control, "status", "-o", "json", "--label", "team=none").output) == []
    assert run(control, "status", "--label", "nolabel").exit_code == 2

    table = run(control, "status", "-o", "wide").output
    assert "cli-contract" in table and "default" in table and "1/1" in table
    described = run(control, "describe", "cli-contract")
    assert described.exit_code == 0
    assert f"flink job    {job}" in described.output and "started attempt 1" in described.output
    assert run(control, "describe", "no-such-job").exit_code == 3
    assert "owned by worker worker-a" in run(control, "events", "cli-contract").output
    assert "2/2" in run(control, "workers").output
    assert run(control, "leader").output == "master-a  leader\n"
    assert "_FLINKSCHED_COMPLETE" in run(control, "completion", "bash").output


def test_operations_change_what_flink_runs(control: ControlPlane, store: Store) -> None:
    first = control.write_job("cli-ops")
    control.start_master()
    control.start_worker()
    wait_until(lambda: control.cluster.completed_checkpoint_id(first) >= 2, 90, "checkpoints")

    # restart: a new attempt from the newest checkpoint
    assert run(control, "restart", "cli-ops").exit_code == 0
    second = flink_job_id("cli-ops", 2)
    wait_until(lambda: control.cluster.job_state(second) == "RUNNING", 60, "attempt 2")
    control.cluster.restored_from_newest(first, second)

    # savepoint --wait: a savepoint appears on disk
    result = run(control, "savepoint", "cli-ops", "--wait", "--timeout", "60")
    assert result.exit_code == 0, result.output
    taken = result.output.strip().rsplit(" ", 1)[-1]
    assert Path(taken.removeprefix("file:")).is_dir()

    # suspend: the job stops with a savepoint, and status shows the override
    assert run(control, "suspend", "cli-ops", "--reason", "maintenance", "--yes").exit_code == 0
    wait_until(lambda: control.cluster.job_state(second) == "FINISHED", 60,
               "attempt 2 stopped with a savepoint")
    def suspended_status() -> JobStatus | None:
        status = store.status("cli-ops")[0]
        return status if status.phase == "Suspended" else None

    suspended = wait_until(suspended_status, 30, "the status to say Suspended")
    kept = suspended.last_checkpoint
    assert kept is not None and kept.kind == "savepoint"
    assert Path(kept.path.removeprefix("file:")).is_dir()
    [row] = json.loads(run(control, "status", "-o", "json").output)
    assert row["desiredState"] == "suspended" and row["override"]["reason"] == "maintenance"
    assert control.cluster.running_ids("cli-ops") == []

    # resume: a new attempt restored from the suspend savepoint
    assert run(control, "resume", "cli-ops").exit_code == 0
    third = flink_job_id("cli-ops", 3)
    wait_until(lambda: control.cluster.job_state(third) == "RUNNING", 60, "attempt 3")
    restored = wait_until(lambda: control.cluster.checkpoints(third)["latest"]["restored"], 30,
                          "attempt 3's restored savepoint")
    assert restored["external_path"].rstrip("/") == kept.path.rstrip("/")
    trail = [e["message"] for e in store.events("cli-ops")]
    assert any(m.startswith("restart requested by ") for m in trail)
    assert any(m.startswith("suspended by ") and m.endswith(": maintenance") for m in trail)
    assert any(m.startswith("resumed by ") for m in trail)

    # restart --from PATH: the next attempt restores exactly that point, however old
    assert run(control, "restart", "cli-ops", "--from", taken).exit_code == 0
    fourth = flink_job_id("cli-ops", 4)
    restored = wait_until(lambda: (control.cluster.checkpoints(fourth).get("latest") or {})
                          .get("restored"), 60, "attempt 4's restored savepoint")
    assert restored["external_path"].rstrip("/") == taken.rstrip("/")
    missing = run(control, "restart", "cli-ops", "--from", taken.rstrip("/") + "-gone")
    assert missing.exit_code == 2 and "does not exist" in missing.output, missing.output


def test_suspend_and_from_empty_ask_first(control: ControlPlane) -> None:
    control.write_job("cli-ask")
    control.start_master()
    wait_until(lambda: "cli-ask" in run(control, "status").output, 30, "the job")
    refused = CliRunner().invoke(cli, ["--zk", control.cluster.zk_hosts, "--root", control.root,
                                       "suspend", "cli-ask", "--reason", "x"], input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    refused = CliRunner().invoke(cli, ["--zk", control.cluster.zk_hosts, "--root", control.root,
                                       "restart", "cli-ask", "--from-empty"], input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output


def test_unreachable_zookeeper_is_one_line_and_exit_2_at_its_connect_deadline() -> None:
    # It gives up after its 4 s connect deadline instead of retrying forever (the subprocess
    # timeout catches a hang); how long the whole command takes is measured in bench/.
    result = subprocess.run([sys.executable, "-m", "scheduler", "--zk", "127.0.0.1:1", "status"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "flinksched: cannot reach ZooKeeper at 127.0.0.1:1 within 4s (set --zk or FLINKSCHED_ZK)"]
    assert result.stdout == ""


def test_zookeeper_digest_auth_from_the_environment(control: ControlPlane) -> None:
    from kazoo.client import KazooClient
    from kazoo.security import make_digest_acl

    root = f"/secure-{control.root.strip('/')}"
    admin = KazooClient(hosts=control.cluster.zk_hosts, auth_data=[("digest", "ops:s3cret")])
    admin.start(timeout=10)
    try:
        admin.create(root, acl=[make_digest_acl("ops", "s3cret", all=True)])
    finally:
        admin.stop()
        admin.close()

    def status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scheduler", "--zk",
                               control.cluster.zk_hosts, "--root", root, "status"],
                              capture_output=True, text=True, cwd=REPO, timeout=30,
                              env={**os.environ, **env})

    refused = status({})
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "flinksched: ZooKeeper refused access to the flinksched root: no access for this "
        "identity, or read-only access and a command that writes "
        "(check --zk-auth / FLINKSCHED_ZK_AUTH)"]
    allowed = status({"FLINKSCHED_ZK_AUTH": "ops:s3cret"})
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == "no jobs\n"
    assert "s3cret" not in allowed.stdout + allowed.stderr


def test_acls_let_the_scheduler_write_and_the_read_identity_only_read(
    control: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The master and worker run as `sched`, creating every node readable by `reader` only;
    the CLI as `reader` reads everything and can change nothing; anonymous clients see
    nothing (tested against the real server)."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError

    monkeypatch.setenv("FLINKSCHED_ZK_AUTH", "sched:writer-pw")
    monkeypatch.setenv("FLINKSCHED_ZK_READ_IDENTITY", "reader:reader-pw")
    control.write_job("acl-job")
    control.start_master()
    control.start_worker()

    def client(auth: str | None) -> KazooClient:
        zk = KazooClient(hosts=control.cluster.zk_hosts,
                         auth_data=[("digest", auth)] if auth else None)
        zk.start(timeout=10)
        return zk

    writer, reader, anonymous = client("sched:writer-pw"), client("reader:reader-pw"), client(None)
    try:
        store = Store(writer, control.root)
        wait_until(lambda: store.status("acl-job")[0].phase == "Running", 90, "acl-job Running")

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "FLINKSCHED_ZK_AUTH": "reader:reader-pw"}
            env.pop("FLINKSCHED_ZK_READ_IDENTITY")
            return subprocess.run([sys.executable, "-m", "scheduler", "--zk",
                                   control.cluster.zk_hosts, "--root", control.root, *args],
                                  capture_output=True, text=True, cwd=REPO, timeout=30, env=env)

        shown = cli("status")
        assert shown.returncode == 0, shown.stderr
        assert "acl-job" in shown.stdout and "Running" in shown.stdout
        assert cli("describe", "acl-job").returncode == 0
        refused = cli("suspend", "acl-job", "--reason", "test", "--yes")
        assert refused.returncode == 2
        assert "read-only access and a command that writes" in refused.stderr
        assert store.override("acl-job") is None, "the read identity changed something"

        job = f"{control.root}/jobs/acl-job"
        reader.get(job)
        with pytest.raises(NoAuthError):
            reader.set(job, b"{}")
        with pytest.raises(NoAuthError):
            reader.create(f"{control.root}/jobs/intruder")
        with pytest.raises(NoAuthError):
            reader.delete(f"{job}/events")
        with pytest.raises(NoAuthError):
            anonymous.get(job)
        with pytest.raises(NoAuthError):
            anonymous.get_children(f"{control.root}/jobs")
        assert store.status("acl-job")[0].phase == "Running"
    finally:
        for zk in (writer, reader, anonymous):
            zk.stop()
            zk.close()
