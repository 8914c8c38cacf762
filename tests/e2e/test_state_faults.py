"""Faults in state, on the real stack: a job never stays down because something it read was
wrong. A broken newest checkpoint, a cluster that keeps checkpoints only in memory, a
ZooKeeper that lost or rolled back its data, SIGTERM with no ZooKeeper at all."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.flink.jobids import flink_job_id
from common.processes import free_port
from common.store.clusterseen import ClusterSeen
from common.store.records import JobStatus, Phase
from common.store.zookeeper import Store
from scheduler.devstack import flinkhome
from scheduler.devstack.services import Service, start, stop, wait_for
from tests.stack import OWN_CLUSTER, TEST_JAVA_OPTIONS, Cluster, ControlPlane
from tests.waiting import holds_for, wait_until
from tests.zkserver import ZooKeeperServer, store_on
from worker.targets.application.local import read_record

pytestmark = pytest.mark.e2e


def running_attempt(store: Store, name: str, attempt: int) -> JobStatus | None:
    status = store.status(name)[0]
    return status if status.phase == Phase.RUNNING and status.attempt == attempt else None


def on_its_cluster(store: Store, name: str) -> JobStatus | None:
    """Attempt 1 RUNNING on a cluster of its own, the status naming that cluster."""
    status = running_attempt(store, name, 1)
    return status if status is not None and status.cluster_url else None


def running_after(store: Store, name: str, attempt: int) -> JobStatus | None:
    status = store.status(name)[0]
    return status if status.phase == Phase.RUNNING and status.attempt > attempt else None


def completed_checkpoints(directory: Path) -> list[Path]:
    """chk-N directories with their metadata, oldest first."""
    found = [d for d in directory.glob("chk-*") if (d / "_metadata").is_file()]
    return sorted(found, key=lambda d: int(d.name.split("-")[1]))


def fail_unwatched(control: ControlPlane, store: Store, name: str, marker: Path,
                   checkpoints: int) -> Path:
    """Attempt 1 runs until it has `checkpoints` checkpoints, then fails while no worker
    watches (its worker is SIGKILLed first), so a test can change its state before a worker
    acts on the failure. Returns attempt 1's checkpoint directory."""
    first = control.write_job(name, args=["--fail-marker", str(marker)])
    control.start_master()
    control.start_worker()
    wait_until(lambda: running_attempt(store, name, 1), 90, "attempt 1 RUNNING")
    directory = control.cluster.state_dir / "checkpoints" / first
    wait_until(lambda: len(completed_checkpoints(directory)) >= checkpoints, 60,
               f"{checkpoints} checkpoints")
    control.processes["worker-a"].kill()
    control.processes["worker-a"].wait(10)
    marker.touch()
    wait_until(lambda: control.cluster.job_state(first) == "FAILED", 60, "attempt 1 FAILED")
    return directory


def event_messages(store: Store, name: str) -> list[str]:
    return [str(e["message"]) for e in store.events(name)]


def test_broken_newest_checkpoint_restarts_from_the_one_before(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    """Flink cannot read the newest checkpoint: that point is marked unusable and the next
    attempt starts at once from the one before, outside the restart policy."""
    name = "broken-newest"
    checkpoints = fail_unwatched(control, store, name, tmp_path / "fail", checkpoints=3)
    *_, usable, newest = completed_checkpoints(checkpoints)
    (newest / "_metadata").write_bytes(b"not a checkpoint")  # Flink: "Unexpected magic number"
    control.start_worker("worker-b")

    status = wait_until(lambda: running_after(store, name, 1), 90, "a later attempt RUNNING")
    restored = wait_until(
        lambda: (control.cluster.checkpoints(status.flink_job_id).get("latest") or {})
        .get("restored"), 30, "the new attempt's restored checkpoint")
    assert restored["external_path"].rstrip("/").rsplit("/", 1)[-1] == usable.name
    rejected = {r.path.rstrip("/").rsplit("/", 1)[-1]: r.reason for r in status.rejected_restores}
    assert newest.name in rejected and "Flink could not restore" in rejected[newest.name]
    assert len(status.restart_times) == 1, "the rejected restore did not count as a restart"
    assert any("is unusable" in m and newest.name in m for m in event_messages(store, name))


def test_no_usable_restore_point_holds_the_job_until_one_is_back(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    """Every checkpoint the job ever had is gone: never empty state silently. The job holds
    in NoRestorePoint, naming what it rejected and the commands that resolve it, submits
    nothing, and starts by itself from the newest checkpoint once that is back."""
    name = "no-restore-point"
    checkpoints = fail_unwatched(control, store, name, tmp_path / "fail", checkpoints=2)
    first = checkpoints.name
    newest = completed_checkpoints(checkpoints)[-1]
    away = tmp_path / "moved-away"
    shutil.move(checkpoints, away)
    control.start_worker("worker-b")

    def held() -> JobStatus | None:
        status = store.status(name)[0]
        return status if status.phase == Phase.NO_RESTORE_POINT else None

    status = wait_until(held, 60, "NoRestorePoint")
    assert first in status.reason and "does not exist" in status.reason, status.reason
    assert f"flinksched restart {name} --from PATH" in status.reason
    assert f"flinksched restart {name} --from-empty" in status.reason
    holds_for(lambda: held() and control.cluster.submissions(name) == [first], 4,
              "held, with nothing submitted")

    shutil.move(away, checkpoints)
    status = wait_until(lambda: running_after(store, name, 1), 60, "running again")
    restored = wait_until(lambda: (control.cluster.checkpoints(status.flink_job_id)
                                   .get("latest") or {}).get("restored"), 30, "a restore")
    assert restored["external_path"].rstrip("/").rsplit("/", 1)[-1] == newest.name


def test_state_that_does_not_fit_the_program_holds_the_job_without_retrying(
    control: ControlPlane, store: Store
) -> None:
    """An upgrade renames the stateful operator: its savepoint cannot be mapped. The job is
    held with Flink's message and the way out; allowNonRestoredState then starts it."""
    name = "unmappable"
    control.write_job(name, args=["--operator-uid", "counter-a"])
    control.start_master()
    control.start_worker()
    wait_until(lambda: running_attempt(store, name, 1), 90, "attempt 1 RUNNING")
    control.write_job(name, args=["--operator-uid", "counter-b"])  # a new generation

    def held() -> JobStatus | None:
        status = store.status(name)[0]
        return status if status.phase == Phase.RESTORE_INCOMPATIBLE else None

    status = wait_until(held, 90, "RestoreIncompatible")
    assert "Cannot map checkpoint/savepoint state" in status.reason
    assert "allowNonRestoredState: true" in status.reason and "--from PATH" in status.reason
    submitted = control.cluster.submissions(name)
    holds_for(lambda: held() and control.cluster.submissions(name) == submitted, 4,
              "held, with no further submission")

    control.write_job(name, args=["--operator-uid", "counter-b"],
                      job={"allowNonRestoredState": True})
    following = wait_until(lambda: running_after(store, name, status.attempt), 90,
                           "running again")
    restored = wait_until(lambda: (control.cluster.checkpoints(following.flink_job_id)
                                   .get("latest") or {}).get("restored"), 30, "a restore")
    assert restored["is_savepoint"], "from the upgrade's savepoint, its unmapped state dropped"


# -- a cluster in Flink's stock configuration: no checkpoint directory ----------------------
@pytest.fixture(scope="module")
def stock_cluster(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second session cluster with no execution.checkpointing.dir: Flink keeps checkpoints
    in the JobManager's memory and reports no external path for them."""
    state = tmp_path_factory.mktemp("stock")
    home = flinkhome.flink_home()
    ports = flinkhome.FlinkPorts(rest=free_port(), rpc=free_port())
    conf = flinkhome.write_flink_conf(home, state / "conf", state, ports, durable=False,
                                      java_options=TEST_JAVA_OPTIONS)
    env = {"FLINK_CONF_DIR": str(conf.parent), "FLINK_LOG_DIR": str(state / "logs")}
    services = [Service(role, [str(home / "bin" / f"{role}.sh"), "start-foreground"], env, state)
                for role in ("jobmanager", "taskmanager")]
    url = f"http://localhost:{ports.rest}"

    def taskmanagers() -> int:
        try:
            return int(httpx.get(f"{url}/overview", timeout=2).json()["taskmanagers"])
        except (httpx.HTTPError, ValueError, KeyError):
            return 0

    try:
        for service in services:
            start(service)
        assert wait_for(lambda: taskmanagers() > 0, 120, 0.25), "stock cluster did not start"
        yield url
    finally:
        for service in reversed(services):
            stop(service)


def test_stock_cluster_without_checkpoint_dir_is_flagged_and_restarts_with_reason(
    control: ControlPlane, store: Store, stock_cluster: str, tmp_path: Path
) -> None:
    name, marker = "stock-config", tmp_path / "fail"
    (control.config_dir / "clusters.yaml").write_text(
        "apiVersion: flinksched/v1\nkind: FlinkCluster\nmetadata: {name: default}\n"
        f"spec: {{restUrl: '{stock_cluster}'}}\n")
    first = control.write_job(name, args=["--fail-marker", str(marker)])
    metrics_port = free_port()
    control.start_master("master-a", "--metrics-port", str(metrics_port))
    control.start_worker()
    wait_until(lambda: running_attempt(store, name, 1), 90, "attempt 1 RUNNING")
    def flagged() -> JobStatus | None:
        status = store.status(name)[0]
        return status if not status.checkpoints_durable else None

    status = wait_until(flagged, 30, "checkpoints flagged as not durable")
    assert status.last_checkpoint is None, "a placeholder is never recorded as a checkpoint"
    wait_until(lambda: 'flinksched_job_checkpoints_durable{cluster="default",'
               f'job_name="{name}"}} 0.0' in httpx.get(
                   f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text,
               30, "the leader's metric saying so")

    marker.touch()
    status = wait_until(lambda: running_attempt(store, name, 2), 60, "attempt 2 RUNNING")
    assert status.restored_from == "", "never the placeholder"
    assert any("from empty state (its checkpoints are kept only in the JobManager's memory"
               in m for m in event_messages(store, name)), event_messages(store, name)
    assert control.cluster.job_state(first) is None, "the session cluster was not used"


# -- ZooKeeper that lost or rolled back its data ---------------------------------------------
@pytest.fixture
def own_zk(tmp_path: Path) -> Iterator[ZooKeeperServer]:
    """A ZooKeeper of the test's own, whose data the test wipes or rolls back."""
    server = ZooKeeperServer(tmp_path / "zk")
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


@pytest.fixture
def own_store(own_zk: ZooKeeperServer, control: ControlPlane) -> Iterator[Store]:
    with store_on(own_zk.hosts, control.root) as store:
        yield store


def start_plane(control: ControlPlane, zk: ZooKeeperServer, store: Store, name: str,
                args: list[str] | None = None, slots: int = 1) -> str:
    """A master and a worker on the test's own ZooKeeper; returns attempt 1's id, RUNNING."""
    first = control.write_job(name, args=args)
    control.start_master(zk=zk.hosts)
    control.start_worker(zk=zk.hosts, slots=slots)
    wait_until(lambda: running_attempt(store, name, 1), 90, "attempt 1 RUNNING")
    return first


def test_zookeeper_that_lost_its_data_gets_fresh_sessions_and_adopts_running_attempts(
    control: ControlPlane, own_zk: ZooKeeperServer, own_store: Store
) -> None:
    name, own = "zk-wiped", "zk-wiped-own"
    control.write_job(own, cluster=OWN_CLUSTER)  # and one on a cluster of its own
    first = start_plane(control, own_zk, own_store, name, slots=2)
    wait_until(lambda: isinstance(own_store.cluster_seen("default"), ClusterSeen), 20,
               "the worker to record the cluster's Flink version")
    own_before = wait_until(lambda: on_its_cluster(own_store, own), 90,
                            "the job on its own cluster RUNNING")
    own_record = read_record(control.applications_dir / own / own_before.flink_job_id)
    assert own_record is not None

    wiped_at = own_zk.wipe()

    # Master and workers notice on their own (session timeout 6 s) and start fresh sessions;
    # the leader syncs the configs again, the worker owns the job again and adopts attempt 1.
    # (The test's own client saw the old data too: it watches through a new one.)
    with store_on(own_zk.hosts, control.root) as fresh:
        wait_until(lambda: fresh.owner(name) and running_attempt(fresh, name, 1), 60,
                   "the job owned again with attempt 1 RUNNING")
        took = time.monotonic() - wiped_at
        assert any("adopted attempt 1" in m for m in event_messages(fresh, name))
        # What it recorded went with the data: it is written again in the new session.
        wait_until(lambda: isinstance(fresh.cluster_seen("default"), ClusterSeen), 20,
                   "the cluster's Flink version recorded again")
        # The job on its own cluster: its running cluster adopted, and named again.
        own_after = wait_until(lambda: on_its_cluster(fresh, own), 60,
                               "the own cluster's attempt adopted, its UI named")
        assert own_after.cluster_url == own_before.cluster_url
        assert any("adopted attempt 1" in m for m in event_messages(fresh, own))
    still = read_record(control.applications_dir / own / own_before.flink_job_id)
    assert still is not None and still.processes == own_record.processes, "the same processes"
    assert [d.name for d in (control.applications_dir / own).iterdir()] == [
        own_before.flink_job_id], "no other cluster started"
    assert took < control.session_timeout + 10, f"took {took:.1f}s"
    assert control.cluster.submissions(name) == [first], "adopted: no restart, no duplicate"
    for process in ("master-a", "worker-a"):
        assert "starting a new client with a fresh session" in control.log(process), process


def test_zookeeper_rolled_back_to_an_older_copy_adopts_the_newer_attempt(
    control: ControlPlane, own_zk: ZooKeeperServer, own_store: Store, tmp_path: Path
) -> None:
    """The restored status says attempt 1; Flink runs attempt 2. Attempt 2 is adopted, and
    attempt 1's record drives no restart (it failed long ago)."""
    name, marker = "zk-rolled-back", tmp_path / "fail"
    first = start_plane(control, own_zk, own_store, name, ["--fail-marker", str(marker)])
    own_zk.stop()  # a backup taken now
    backup = tmp_path / "zk-backup"
    shutil.copytree(own_zk.data, backup)
    own_zk.start()
    marker.touch()
    second = flink_job_id(name, 2)
    wait_until(lambda: running_attempt(own_store, name, 2), 90, "attempt 2 RUNNING")

    own_zk.restore(backup)
    with store_on(own_zk.hosts, control.root) as fresh:
        wait_until(lambda: fresh.owner(name) and running_attempt(fresh, name, 2), 60,
                   "attempt 2 adopted")
    holds_for(lambda: control.cluster.running_ids(name) == [second], 3, "attempt 2 alone")
    assert control.cluster.submissions(name) == [first, second], "no attempt 3"


def test_sigterm_ends_master_and_worker_within_10s_without_zookeeper(
    control: ControlPlane, own_zk: ZooKeeperServer, own_store: Store
) -> None:
    name = "no-zk-sigterm"
    first = start_plane(control, own_zk, own_store, name)
    own_zk.stop(signal.SIGKILL)
    wait_until(lambda: "ZooKeeper connection SUSPENDED" in control.log("worker-a"), 20,
               "the worker to notice")
    began = time.monotonic()
    for process in ("master-a", "worker-a"):
        control.signal(process, signal.SIGTERM)
    for process in ("master-a", "worker-a"):
        try:
            control.processes[process].wait(max(0.1, began + 10 - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{process} still running 10 s after SIGTERM")
    assert control.cluster.job_state(first) == "RUNNING", "the Flink job keeps running"
