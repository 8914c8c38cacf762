"""One job from YAML to RUNNING, and back to RUNNING after it fails or its JobManager dies,
on a real ZooKeeper, a real Flink session cluster and real master and worker processes."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from common.flink.jobids import flink_job_id
from common.processes import free_port
from common.store.records import Checkpoint, JobStatus
from common.store.zookeeper import Store
from scheduler.cli.main import cli
from scheduler.devstack.seaweedfs import S3Server
from scheduler.devstack.services import kill, running_pid
from tests.objectstore import Bucket, state_on
from tests.programs import python_program, sql_example
from tests.stack import ControlPlane, FlinkUnderTest, on_each_flink
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def newest_retained_checkpoint(checkpoint_root: Path, job_id: str) -> str:
    """The newest completed checkpoint Flink left on disk for one attempt."""
    completed = [d for d in (checkpoint_root / job_id).glob("chk-*") if (d / "_metadata").exists()]
    return max(completed, key=lambda d: int(d.name.split("-")[1])).name


@on_each_flink
def test_job_reaches_running_and_status_shows_it(flink: FlinkUnderTest, control: ControlPlane,
                                                 store: Store) -> None:
    job_id = control.write_job("skeleton-running")
    metrics_port = free_port()
    control.start_master("master-a", "--metrics-port", str(metrics_port))
    control.start_worker()

    wait_until(lambda: control.cluster.job_state(job_id) == "RUNNING", 90,
               "the job to be RUNNING in Flink")
    wait_until(lambda: store.status("skeleton-running")[0].phase == "Running", 10,
               "ZooKeeper status to say Running")

    runner = CliRunner()
    result = runner.invoke(cli, ["--zk", control.cluster.zk_hosts, "--root", control.root,
                                 "status", "-o", "json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["name"] == "skeleton-running"
    assert row["phase"] == "Running"
    assert row["flinkJobId"] == job_id
    assert row["attempt"] == 1
    assert row["worker"] == "worker-a"

    table = runner.invoke(cli, ["--zk", control.cluster.zk_hosts, "--root", control.root,
                                "status"])
    assert table.exit_code == 0
    assert "skeleton-running" in table.output and job_id in table.output

    # The leader exports the job's state from ZooKeeper, so a dead worker hides no dead job.
    def scraped() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        up = 'flinksched_job_up{cluster="default",job_name="skeleton-running"} 1.0'
        version = ('flinksched_cluster_flink_info{cluster="default",'
                   f'flink_version="{flink.version}"}} 1.0')
        return text if up in text and version in text else None

    # Each cluster's version, as its REST API reports it to the worker, and what it lacks.
    def described() -> str | None:
        shown = runner.invoke(cli, ["--zk", control.cluster.zk_hosts, "--root", control.root,
                                    "describe", "skeleton-running"])
        return shown.output if f"flink        {flink.version} (" in shown.output else None

    description = wait_until(described, 30, f"describe to show Flink {flink.version}")
    no_listener = "no status listener: Flink 1.20 has no job status listeners"
    assert (no_listener in description) == flink.version.startswith("1.")

    exposition = wait_until(scraped, 20, "the master's /metrics to show the job up and its "
                                         "cluster's Flink version")
    assert "flinksched_leader 1.0" in exposition
    assert ('flinksched_job_phase{cluster="default",job_name="skeleton-running",'
            'phase="Running"} 1.0') in exposition
    assert "flinksched_workers 1.0" in exposition
    age = re.search(r"^flinksched_job_series_age_seconds (\S+)$", exposition, re.M)
    assert age is not None and float(age.group(1)) < 10  # encoded by a pass every 5 s
    assert "loaded the state of 1 job(s);" in control.log("master-a")  # heap settled


@on_each_flink
def test_failed_job_restarts_from_the_newest_checkpoint(
    flink: FlinkUnderTest, control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "fail-once"
    first = control.write_job("skeleton-failover", args=["--fail-marker", str(marker)])
    control.start_master()
    control.start_worker()
    wait_until(lambda: control.cluster.completed_checkpoint_id(first) >= 2, 120,
               "two completed checkpoints of attempt 1")

    marker.touch()
    second = flink_job_id("skeleton-failover", 2)
    wait_until(lambda: control.cluster.job_state(first) == "FAILED", 30, "attempt 1 to fail")
    wait_until(lambda: control.cluster.job_state(second) == "RUNNING", 60,
               "attempt 2 to be RUNNING")

    restored = control.cluster.restored_from_newest(first, second)
    failed_latest = control.cluster.checkpoints(first)["latest"]["completed"]
    assert restored["external_path"].rstrip("/") == failed_latest["external_path"].rstrip("/")
    assert control.cluster.running_ids("skeleton-failover") == [second]

    # Flink reports the root exception from a cache; the status names it once Flink does.
    def root_cause_recorded() -> JobStatus | None:
        status = store.status("skeleton-failover")[0]
        return status if "injected failure" in status.last_failure else None

    status = wait_until(root_cause_recorded, 15, "the status to name Flink's root exception")
    assert status.attempt == 2 and status.restarts == 1
    assert status.last_failure.startswith("FAILED: java.lang.IllegalStateException")
    started = f"restarted attempt 2 from chk-{failed_latest['id']}"
    restart = next(e for e in store.events("skeleton-failover")
                   if e["message"].startswith(started))
    # The cluster's listener pushes to another root: to this control plane it is a cluster
    # without one, watched by polling as before.
    assert restart["noticedBy"] == "poll"


def recorded_checkpoint(store: Store, name: str) -> Checkpoint:
    checkpoint = store.status(name)[0].last_checkpoint
    assert checkpoint is not None, f"{name} has a checkpoint recorded in ZooKeeper"
    return checkpoint


@on_each_flink
@pytest.mark.takes_cluster_down
@pytest.mark.python_functions
def test_jobmanager_restart_resumes_from_disk_reuploads_the_jar_and_spends_no_restart_budget(
    flink: FlinkUnderTest, control: ControlPlane, store: Store, s3: S3Server, bucket: Bucket,
    tmp_path: Path,
) -> None:
    """Beside the job on local disk, one with its state in the S3 bucket, and a Python and a
    SQL job on local disk: each resumes from the newest checkpoint its storage holds, found
    by listing it."""
    devstack = flink.devstack
    # No restart budget at all: a job the cluster lost did not fail, so it comes back anyway.
    control.write_job("skeleton-jm-loss", restartPolicy={"maxRestarts": 0})
    on_s3 = state_on(s3, control.root.strip("/"))
    first_s3 = control.write_job("skeleton-jm-loss-s3", restartPolicy={"maxRestarts": 0},
                                 config=on_s3)
    programs = {"skeleton-jm-loss-py": python_program(tmp_path / "never"),
                "skeleton-jm-loss-sql": sql_example()}
    for name, program in programs.items():
        control.write_job(name, program=program, restartPolicy={"maxRestarts": 0})
    names = ["skeleton-jm-loss", "skeleton-jm-loss-s3", *programs]
    control.start_master()
    control.start_worker(slots=len(names))
    for name in names:
        wait_until(lambda n=name: store.status(n)[0].last_checkpoint, 120,  # type: ignore[misc]
                   f"a checkpoint of {name} recorded in ZooKeeper")
    # Freeze the worker so ZooKeeper's checkpoints fall behind what Flink keeps; what
    # ZooKeeper holds is read once the worker can no longer write.
    uploaded_before = {jar["id"] for jar in control.cluster.get("/jars")["files"]}
    control.signal("worker-a", signal.SIGSTOP)
    jobmanager = devstack.flink_service("jobmanager")
    try:
        recorded = {name: recorded_checkpoint(store, name) for name in names}
        wait_until(lambda: all(
            control.cluster.completed_checkpoint_id(flink_job_id(n, 1)) >= recorded[n].id + 2
            for n in names), 30, "two checkpoints of each job newer than the one ZooKeeper holds")
        assert running_pid(jobmanager) is not None
        kill(jobmanager)
        assert running_pid(jobmanager) is None
    finally:
        control.signal("worker-a", signal.SIGCONT)
    assert {name: recorded_checkpoint(store, name) for name in names} == recorded
    checkpoint_root = devstack.state_dir / "checkpoints"
    newest = {name: newest_retained_checkpoint(checkpoint_root, flink_job_id(name, 1))
              for name in names if name != "skeleton-jm-loss-s3"}
    newest_in_bucket = bucket.checkpoints(on_s3["execution.checkpointing.dir"], first_s3)[-1]

    devstack.start_jobmanager()
    wait_until(lambda: (control.cluster.get("/overview") or {}).get("taskmanagers", 0) > 0, 90,
               "the TaskManager to rejoin the restarted JobManager")

    def restored_by(name: str, timeout: float) -> dict[str, Any]:
        """What attempt 2 of the job restored from, once RUNNING on the new JobManager."""
        second = flink_job_id(name, 2)
        wait_until(lambda: control.cluster.job_state(second) == "RUNNING", timeout,
                   f"{name} attempt 2 RUNNING on the restarted JobManager")
        return wait_until(lambda: control.cluster.checkpoints(second)["latest"].get("restored"),
                          30, f"{name} attempt 2 to report its restored checkpoint")

    for name in newest:  # on local disk: a jar, a Python and a SQL job alike
        restored = restored_by(name, 120)
        assert restored["external_path"].rstrip("/").endswith(
            f"{flink_job_id(name, 1)}/{newest[name]}"), name
        assert restored["id"] >= recorded[name].id + 2, f"{name}: newer than ZooKeeper's"
    restored_s3 = restored_by("skeleton-jm-loss-s3", 60)
    assert restored_s3["external_path"].rstrip("/") == (
        f"{on_s3['execution.checkpointing.dir']}/{first_s3}/chk-{newest_in_bucket}")
    assert restored_s3["id"] >= recorded["skeleton-jm-loss-s3"].id + 2, "none left behind"
    [jar] = [jar for jar in control.cluster.get("/jars")["files"]
             if jar["name"].endswith(control.cluster.example_jar.name)]
    assert jar["id"] not in uploaded_before, "the restarted JobManager got the jar uploaded again"

    def running_status() -> JobStatus | None:
        status = store.status("skeleton-jm-loss")[0]
        return status if status.phase == "Running" else None

    status = wait_until(running_status, 30, "the status to say Running")
    assert "missing from the cluster" in status.last_failure
    assert status.attempt == 2 and status.restarts == 1
    assert status.restart_times == (), "the lost attempt spent none of the restart budget"
