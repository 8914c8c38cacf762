"""Jobs on a cluster of their own (a FlinkCluster of mode application), as local processes
of the real Flink distribution: a JobManager in application mode and a TaskManager per
attempt, started by a real worker, watched over their REST API, torn down with the attempt.

The tests share one job's life, in the order written (each begins from the job RUNNING,
which the fixture makes sure of, so each also runs alone): every cluster costs two JVM
starts, and each test starting its job afresh would add one more cluster per test.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.flink.jobids import flink_job_id
from common.store.records import JobStatus, Phase
from common.store.zookeeper import Store
from tests.stack import OWN_CLUSTER, OWN_CLUSTER_START_SECONDS, Cluster, ControlPlane
from tests.waiting import holds_for, wait_until
from tests.zkserver import store_on
from worker.targets.application.local import ProcessTable

pytestmark = pytest.mark.e2e

JOB = "own-counter"
MARKER_NAME = "fail-once"


def live_workers(control: ControlPlane) -> list[str]:
    return [name for name, process in control.processes.items()
            if name.startswith("worker-") and process.poll() is None]


class OwnJob:
    """The job, its control plane and what its clusters run as."""

    def __init__(self, control: ControlPlane, store: Store, marker: Path) -> None:
        self.control = control
        self.store = store
        self.marker = marker
        self.rate = 20

    def write(self, cluster: str = OWN_CLUSTER) -> None:
        self.control.write_job(JOB, cluster=cluster, args=[
            "--fail-marker", str(self.marker), "--rate", str(self.rate)])

    def status(self) -> JobStatus:
        return self.store.status(JOB)[0]

    def status_if(self, check: Callable[[JobStatus], bool]) -> JobStatus | None:
        status = self.status()
        return status if check(status) else None

    def running(self, attempt: int | None = None,
                timeout: float = OWN_CLUSTER_START_SECONDS) -> JobStatus:
        """The status once the attempt (any, when None) is RUNNING with a checkpoint."""
        def ready() -> JobStatus | None:
            status = self.status()
            if status.phase != Phase.RUNNING or (attempt is not None
                                                 and status.attempt != attempt):
                return None
            return status if status.last_checkpoint and status.cluster_url else None
        return wait_until(ready, timeout, f"attempt {attempt or 'any'} RUNNING on its own "
                                          "cluster with a checkpoint")

    def processes(self) -> dict[str, dict[int, str]]:
        """Job id -> pid -> role of every process of the job's clusters."""
        table = ProcessTable()
        job_dir = self.control.applications_dir / JOB
        runs = [d for d in job_dir.iterdir() if d.is_dir()] if job_dir.is_dir() else []
        return {run.name: found for run in runs if (found := table.naming(run.resolve()))}

    def jobmanager_pid(self, job_id: str) -> int:
        roles = self.processes().get(job_id, {})
        return next(pid for pid, role in roles.items() if role == "jobmanager")

    def rest(self, status: JobStatus, path: str) -> Any:
        answer = httpx.get(status.cluster_url + path, timeout=10)
        return answer.json() if answer.status_code == 200 else None

    def restored(self, status: JobStatus) -> dict[str, Any]:
        """What Flink says the attempt restored from (its statistics lag up to 3 s)."""
        def found() -> dict[str, Any] | None:
            stats = self.rest(status, f"/jobs/{status.flink_job_id}/checkpoints") or {}
            restored = (stats.get("latest") or {}).get("restored")
            return dict(restored) if restored else None
        return wait_until(found, 20, f"attempt {status.attempt}'s restored checkpoint")

    def alone(self, status: JobStatus) -> None:
        """Only the current attempt's processes run: never two attempts alive."""
        holds_for(lambda: set(self.processes()) == {status.flink_job_id}, 1,
                  "only the current attempt's cluster running")

    def cli(self, *args: str) -> str:
        return self.control.cli(*args)


def newest_on_disk(cluster: Cluster, job_id: str) -> int:
    """The newest completed checkpoint of an attempt under the checkpoint directory."""
    found = [int(d.name.removeprefix("chk-")) for d in
             (cluster.state_dir / "checkpoints" / job_id).glob("chk-*")
             if (d / "_metadata").is_file()]
    return max(found, default=0)


@pytest.fixture(scope="module")
def own_control(cluster: Cluster,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(cluster, tmp_path_factory.mktemp("own-clusters")) as plane:
        yield plane


@pytest.fixture(scope="module")
def own_store(own_control: ControlPlane) -> Iterator[Store]:
    with store_on(own_control.cluster.zk_hosts, own_control.root) as store:
        yield store


@pytest.fixture
def own(own_control: ControlPlane, own_store: Store) -> OwnJob:
    """The job RUNNING, written (again, after the removal test) and its master and worker
    started when they are not."""
    job = OwnJob(own_control, own_store, own_control.workdir / MARKER_NAME)
    if not (own_control.config_dir / f"{JOB}.yaml").exists():
        job.write()
    if "master-a" not in own_control.processes:
        own_control.start_master()
    if not live_workers(own_control):
        own_control.start_worker("worker-a")
    job.running()
    return job


class TestOwnJobLife:
    """One job's life, in the order written, in one process (the run schedules a class's
    tests together)."""

    def test_first_start_runs_the_job_on_a_cluster_of_its_own(
            self, own: OwnJob, cluster: Cluster) -> None:
        status = own.running(1)
        assert status.flink_job_id == flink_job_id(JOB, 1)
        assert status.cluster_url.startswith("http://localhost:")
        assert status.cluster_url != cluster.rest_url
        job = own.rest(status, f"/jobs/{status.flink_job_id}")
        assert job["state"] == "RUNNING" and job["name"]
        assert cluster.submissions(JOB) == [], "nothing of the job on the session cluster"
        roles = own.processes()[status.flink_job_id]
        assert sorted(roles.values()) == ["jobmanager", "taskmanager-0"]
        # Its JobManager runs the job in application mode, configured by flinksched.
        config = {e["key"]: e["value"] for e in own.rest(status, "/jobmanager/config")}
        assert config["execution.shutdown-on-application-finish"] == "false"
        assert config["jobmanager.memory.process.size"] == "768m"

        shown = own.cli("describe", JOB)
        assert f"own cluster  {status.cluster_url}" in shown
        rows = json.loads(own.cli("status", "-o", "json"))
        assert rows[0]["clusterUrl"] == status.cluster_url and rows[0]["ownCluster"] is True

    def test_failed_job_restarts_on_a_new_cluster_from_the_newest_checkpoint(
            self, own: OwnJob, cluster: Cluster) -> None:
        before = own.running()
        own.marker.touch()  # the job throws once, and deletes the marker
        after = own.running(before.attempt + 1)
        assert "FAILED" in after.last_failure and "injected failure" in after.last_failure
        restored = own.restored(after)
        assert restored["external_path"].rstrip("/").endswith(
            f"{before.flink_job_id}/chk-{newest_on_disk(cluster, before.flink_job_id)}")
        assert after.restarts == before.restarts + 1
        own.alone(after)

    def test_jobmanager_killed_restarts_on_a_new_cluster_from_the_newest_checkpoint(
            self, own: OwnJob, cluster: Cluster) -> None:
        before = own.running()
        wait_until(lambda: newest_on_disk(cluster, before.flink_job_id), 20,
                   "a checkpoint of the attempt on disk")
        pid = own.jobmanager_pid(before.flink_job_id)
        os.kill(pid, signal.SIGKILL)
        after = own.running(before.attempt + 1)
        assert after.cluster_url != before.cluster_url
        newest = newest_on_disk(cluster, before.flink_job_id)
        assert after.restored_from.rstrip("/").endswith(f"{before.flink_job_id}/chk-{newest}")
        assert f"the cluster of {before.flink_job_id} ended: its JobManager exited" in (
            after.last_failure), "a JobManager that dies counts against the restart policy"
        assert after.restarts == before.restarts + 1
        own.alone(after)  # its TaskManager went with it

    def test_upgrade_stops_with_a_savepoint_and_starts_a_new_cluster_from_it(
            self, own: OwnJob) -> None:
        before = own.running()
        own.rate += 1
        own.write()  # a new generation: the job's arguments changed
        after = own.running(before.attempt + 1)
        assert after.observed_generation > before.observed_generation
        taken = after.savepoints[-1]
        assert after.restored_from == taken.path
        assert own.restored(after)["is_savepoint"] is True
        own.alone(after)

    def test_suspend_frees_every_process_and_resume_starts_from_the_savepoint(
            self, own: OwnJob) -> None:
        before = own.running()
        own.cli("suspend", JOB, "--reason", "maintenance", "--yes")
        suspended = wait_until(lambda: own.status_if(lambda s: s.phase == Phase.SUSPENDED), 60,
                               "the job Suspended")
        kept = suspended.last_checkpoint
        assert kept is not None and kept.kind == "savepoint"
        assert (Path(kept.path.removeprefix("file:")) / "_metadata").is_file(), "savepoint kept"
        wait_until(lambda: not own.processes(), 20, "no process of the job left")
        own.cli("resume", JOB)
        after = own.running(before.attempt + 1)
        assert after.restored_from == kept.path
        own.alone(after)

    def test_killed_worker_leaves_the_cluster_running_and_the_next_adopts_it(
            self, own: OwnJob) -> None:
        before = own.running()
        pid = own.jobmanager_pid(before.flink_job_id)
        [killed] = live_workers(own.control)
        own.control.signal(killed, signal.SIGKILL)
        own.control.processes[killed].wait(10)
        successor = f"worker-{len(own.control.processes)}"
        own.control.start_worker(successor)
        adopted = wait_until(lambda: own.status_if(
            lambda s: s.worker == successor and s.phase == Phase.RUNNING), 60,
            f"{successor} to own the job")
        holds_for(lambda: own.status().phase == Phase.RUNNING
                  and own.jobmanager_pid(before.flink_job_id) == pid, 2,
                  "the same attempt running on the same JobManager")
        assert adopted.attempt == before.attempt and adopted.restarts == before.restarts

    def test_moving_the_job_to_the_session_cluster_and_back_never_runs_it_twice(
            self, own: OwnJob, cluster: Cluster) -> None:
        """Each move stops the attempt with a savepoint where it runs, then starts the next on
        the other cluster from it; what is left on the cluster it left is torn down."""
        before = own.running()
        own.write(cluster="default")
        on_session = wait_until(lambda: own.status_if(
            lambda s: s.attempt == before.attempt + 1 and s.phase == Phase.RUNNING), 60,
            "the next attempt RUNNING on the session cluster")
        assert on_session.cluster_url == "" and on_session.restored_from == (
            on_session.savepoints[-1].path)
        assert cluster.running_ids(JOB) == [on_session.flink_job_id]
        wait_until(lambda: not own.processes(), 20, "the cluster it left torn down")

        own.write()  # and back to a cluster of its own
        back = own.running(on_session.attempt + 1)
        assert back.restored_from == back.savepoints[-1].path != on_session.restored_from
        assert cluster.running_ids(JOB) == [], "stopped on the session cluster"
        assert cluster.job_state(on_session.flink_job_id) == "FINISHED"
        own.alone(back)

    def test_removal_tears_the_cluster_down(self, own: OwnJob) -> None:
        own.running()
        own.control.remove_job(JOB)
        wait_until(lambda: own.status_if(lambda s: s.phase == Phase.REMOVED), 60, "the job Removed")
        wait_until(lambda: not own.processes(), 20, "no process of the job left")
