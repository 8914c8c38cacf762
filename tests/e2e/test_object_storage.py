"""Jobs keeping their state and jars on a real S3 server (SeaweedFS), through Flink's
flink-s3-fs-presto plugin, on Flink 2.x and 1.20: the core recovery behaviours with every
checkpoint and savepoint in the bucket, jars fetched from it, retention of superseded
attempts' checkpoints, and storage that is wrong (credentials, bucket, endpoint, a key
without its `_metadata`) named as such while the other jobs run on.

The life tests share one job's life per Flink version, in the order written (each begins
from the job RUNNING, which the fixture makes sure of, so each also runs alone).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from common.flink.jobids import flink_job_id
from common.processes import free_port
from common.store.records import JobStatus, Phase, StoredState
from common.store.zookeeper import Store
from scheduler.devstack.seaweedfs import S3Server
from tests.objectstore import Bucket, state_on
from tests.stack import (
    OWN_CLUSTER,
    OWN_CLUSTER_START_SECONDS,
    PRIMARY_VERSION,
    SECOND_VERSION,
    ControlPlane,
    FlinkUnderTest,
)
from tests.waiting import holds_for, wait_until
from tests.zkserver import store_on
from worker.decide.restore_rules import checkpoint_number

pytestmark = pytest.mark.e2e


def status_if(store: Store, name: str, check: Callable[[JobStatus], bool]) -> JobStatus | None:
    status = store.status(name)[0]
    return status if check(status) else None


def running(store: Store, name: str, attempt: int | None = None, timeout: float = 90,
            checkpointed: bool = True) -> JobStatus:
    """The status once the attempt (any, when None) is RUNNING, with a checkpoint of its own
    recorded when `checkpointed`."""
    def ready(status: JobStatus) -> bool:
        if status.phase != Phase.RUNNING or (attempt is not None and status.attempt != attempt):
            return False
        own = status.last_checkpoint is not None and (
            f"/{status.flink_job_id}/" in status.last_checkpoint.path)
        return own or not checkpointed
    return wait_until(lambda: status_if(store, name, ready), timeout,
                      f"{name}: attempt {attempt or 'any'} RUNNING"
                      + (" with a checkpoint of its own" if checkpointed else ""))


def restored(control: ControlPlane, status: JobStatus) -> dict[str, Any]:
    """What Flink says the attempt restored from (its statistics lag up to 3 s)."""
    return wait_until(lambda: (control.cluster.checkpoints(status.flink_job_id).get("latest")
                               or {}).get("restored"), 30,
                      f"attempt {status.attempt}'s restored checkpoint")


# -- the storage client against the real server -----------------------------------------------
def test_storage_lists_by_name_start_stats_and_deletes_trees_in_the_bucket(
        s3: S3Server, bucket: Bucket, tmp_path: Path) -> None:
    """As on local disk: a prefix ending in a partial name lists every entry whose name starts
    so (S3 matches whole segments only), a directory prefix what it holds."""
    from common.objstore.storage import Storage

    base = s3.uri(f"storage-{free_port()}")
    payload = tmp_path / "object"
    payload.write_bytes(b"x" * 10)
    for key in ("cp/211ed7/chk-1/_metadata", "cp/211ed7/chk-1/part", "cp/211ed7aa/chk-2/_metadata",
                "cp/211ed7-file", "cp/99aa/chk-1/_metadata"):
        bucket.put(f"{base}/{key}", payload)
    storage = Storage()
    started = sorted(e.uri for e in storage.list(f"{base}/cp/211ed7"))
    assert started == [f"{base}/cp/{k}" for k in (
        "211ed7-file", "211ed7/chk-1/_metadata", "211ed7/chk-1/part",
        "211ed7aa/chk-2/_metadata")]
    held = sorted(e.uri for e in storage.list(f"{base}/cp/211ed7/"))
    assert held == [f"{base}/cp/211ed7/chk-1/_metadata", f"{base}/cp/211ed7/chk-1/part"]
    found = storage.stat(f"{base}/cp/211ed7/chk-1/_metadata")
    assert found is not None and found.size == 10 and found.modified > 0
    assert storage.stat(f"{base}/cp/211ed7/chk-9/_metadata") is None
    assert storage.delete_tree(f"{base}/cp/211ed7") == (2, 20)
    assert sorted(bucket.objects(f"{base}/cp/")) == [f"{base}/cp/{k}" for k in (
        "211ed7-file", "211ed7aa/chk-2/_metadata", "99aa/chk-1/_metadata")]


# -- one job's life with its state on S3, on each Flink version --------------------------------
JOB = "s3-counter"


@pytest.fixture(scope="class")
def life_plane(request: pytest.FixtureRequest, flink_for: Callable[[str], FlinkUnderTest],
               s3: S3Server, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[ControlPlane]:
    under = flink_for(request.cls.FLINK_VERSION)
    with ControlPlane(under.cluster, tmp_path_factory.mktemp("s3-life")) as plane:
        yield plane


@pytest.fixture(scope="class")
def life_store(life_plane: ControlPlane) -> Iterator[Store]:
    with store_on(life_plane.cluster.zk_hosts, life_plane.root) as store:
        yield store


class S3Job:
    def __init__(self, control: ControlPlane, store: Store, s3: S3Server) -> None:
        self.control = control
        self.store = store
        self.root = control.root.strip("/")
        self.config = state_on(s3, self.root)
        self.checkpoints = self.config["execution.checkpointing.dir"]
        self.savepoints = self.config["execution.checkpointing.savepoint-dir"]
        self.marker = control.workdir / "fail-once"
        self.rate = 20

    def write(self) -> None:
        self.control.write_job(JOB, args=["--fail-at-checkpoint-marker", str(self.marker), "--rate",
                                          str(self.rate)], config=self.config)

    def status(self) -> JobStatus:
        return self.store.status(JOB)[0]


@pytest.fixture
def life(life_plane: ControlPlane, life_store: Store, s3: S3Server) -> S3Job:
    job = S3Job(life_plane, life_store, s3)
    if not (life_plane.config_dir / f"{JOB}.yaml").exists():
        job.write()
    if "master-a" not in life_plane.processes:
        life_plane.start_master()
        life_plane.start_worker()
    running(life_store, JOB)
    return job


class StateOnS3Life:
    FLINK_VERSION: ClassVar[str]

    def test_first_start_keeps_its_checkpoints_in_the_bucket(self, life: S3Job,
                                                             bucket: Bucket) -> None:
        status = running(life.store, JOB, 1)
        assert status.last_checkpoint is not None
        assert status.last_checkpoint.path.startswith(f"{life.checkpoints}/{status.flink_job_id}/")
        assert bucket.checkpoints(life.checkpoints, status.flink_job_id), "no _metadata in S3"
        assert not (life.control.cluster.state_dir / "checkpoints" / status.flink_job_id
                    ).exists(), "nothing of the job's on local disk"

    def test_failed_job_restarts_from_the_newest_checkpoint_in_the_bucket(
            self, life: S3Job, bucket: Bucket) -> None:
        before = running(life.store, JOB)
        # The job throws once (deleting the marker) when told a checkpoint completed: no later
        # checkpoint is in flight then. A failure at any other moment can leave one whose
        # `_metadata` Flink finishes writing after the attempt FAILED and after the restart
        # chose its point, which no restart could have known of.
        life.marker.touch()
        after = running(life.store, JOB, before.attempt + 1)
        # The newest checkpoint Flink completed, and one whose `_metadata` is in the bucket.
        completed = life.control.cluster.checkpoints(before.flink_job_id)["latest"]["completed"]
        point = restored(life.control, after)
        prefix = f"{life.checkpoints}/{before.flink_job_id}/chk-"
        path = point["external_path"].rstrip("/")
        assert path.startswith(prefix), path
        chosen = int(path.removeprefix(prefix))
        assert chosen >= int(completed["id"]), (chosen, completed["id"])
        assert chosen in bucket.checkpoints(life.checkpoints, before.flink_job_id)
        assert "injected failure after checkpoint" in after.last_failure
        assert after.restarts == before.restarts + 1

    def test_upgrade_stops_with_a_savepoint_in_the_bucket_and_starts_from_it(
            self, life: S3Job, bucket: Bucket) -> None:
        before = running(life.store, JOB)
        life.rate += 1
        life.write()  # a new generation: the job's arguments changed
        after = running(life.store, JOB, before.attempt + 1)
        taken = after.savepoints[-1]
        assert taken.path.startswith(f"{life.savepoints}/")
        assert f"{taken.path.rstrip('/')}/_metadata" in bucket.objects(taken.path)
        assert after.restored_from == taken.path
        assert restored(life.control, after)["is_savepoint"] is True

    def test_suspend_and_resume_start_from_the_savepoint_in_the_bucket(
            self, life: S3Job, bucket: Bucket) -> None:
        before = running(life.store, JOB)
        life.control.cli("suspend", JOB, "--reason", "maintenance", "--yes")
        suspended = wait_until(lambda: status_if(life.store, JOB,
                                                 lambda s: s.phase == Phase.SUSPENDED), 60,
                               "the job Suspended")
        kept = suspended.last_checkpoint
        assert kept is not None and kept.kind == "savepoint"
        assert f"{kept.path.rstrip('/')}/_metadata" in bucket.objects(kept.path)
        life.control.cli("resume", JOB)
        after = running(life.store, JOB, before.attempt + 1)
        assert after.restored_from == kept.path

    def test_newest_checkpoint_deleted_in_the_bucket_restarts_from_the_one_before(
            self, life: S3Job, bucket: Bucket) -> None:
        """Its `_metadata` object is gone: the point is passed over before Flink sees it. The
        point deleted is the one ZooKeeper recorded (so a candidate for certain, whatever
        Flink's cached statistics say), and any the attempt completed after it."""
        before = running(life.store, JOB)
        base = f"{life.checkpoints}/{before.flink_job_id}"

        def recorded_newest_with_one_before() -> int | None:
            point = life.status().last_checkpoint
            listed = bucket.checkpoints(life.checkpoints, before.flink_job_id)
            number = checkpoint_number(point.path) if point and point.path.startswith(
                base) else 0
            return number if len(listed) >= 2 and number == listed[-1] else None

        wait_until(recorded_newest_with_one_before, 30,
                   "ZooKeeper holding the newest of two checkpoints in the bucket")
        life.control.signal("worker-a", 19)  # SIGSTOP: the failure waits for the deletion
        try:
            life.marker.touch()
            wait_until(lambda: life.control.cluster.job_state(before.flink_job_id) == "FAILED",
                       30, "the attempt FAILED")
            point = life.status().last_checkpoint
            assert point is not None
            known = checkpoint_number(point.path)
            listed = bucket.checkpoints(life.checkpoints, before.flink_job_id)
            usable = max(n for n in listed if n < known)
            for number in (n for n in listed if n >= known):
                bucket.delete(f"{base}/chk-{number}/_metadata")
        finally:
            life.control.signal("worker-a", 18)  # SIGCONT
        after = running(life.store, JOB, before.attempt + 1)
        assert restored(life.control, after)["external_path"].rstrip("/").endswith(
            f"/chk-{usable}")
        gone = f"{base}/chk-{known}"
        messages = [str(e["message"]) for e in life.store.events(JOB)]
        assert any(gone in m and "has no _metadata object" in m for m in messages), messages[-5:]


class TestStateOnS3(StateOnS3Life):
    """On the session's Flink."""

    FLINK_VERSION = PRIMARY_VERSION


class TestStateOnS3OnTheOtherFlink(StateOnS3Life):
    """On the other supported major version's Flink."""

    FLINK_VERSION = SECOND_VERSION


# -- retention -------------------------------------------------------------------------------
def test_twenty_restarts_keep_two_attempts_checkpoints_and_the_savepoints_retained(
        control: ControlPlane, store: Store, s3: S3Server, bucket: Bucket) -> None:
    """Each attempt completes a checkpoint of its own before the next restart; what is left is
    the current attempt's directory and the previous one's, and the two savepoints
    `savepoints.retain` keeps (the older ones disposed of)."""
    name = "s3-retention"
    config = state_on(s3, control.root.strip("/"))
    directory = config["execution.checkpointing.dir"]
    control.write_job(name, config=config, savepoints={"retain": 2},
                      checkpoints={"retainAttempts": 1})
    control.start_master()
    control.start_worker()
    status = running(store, name, 1)
    taken: list[str] = []
    for restart in range(20):
        if restart % 6 == 0:
            control.cli("savepoint", name, "--wait")
            status = wait_until(lambda: status_if(store, name, lambda s: bool(s.savepoints)
                                                  and s.savepoints[-1].path not in taken), 60,
                                "the savepoint recorded")
            taken.append(status.savepoints[-1].path)
        control.cli("restart", name, "--yes")
        status = running(store, name, status.attempt + 1)  # with a checkpoint of its own
    assert status.attempt == 21

    def pruned() -> set[str] | None:
        left = bucket.attempt_directories(directory)
        return left if len(left) <= 2 else None

    left = wait_until(pruned, 30, "superseded attempts' checkpoints deleted")
    assert flink_job_id(name, 21) in left and left <= {flink_job_id(name, 20),
                                                         flink_job_id(name, 21)}
    kept = [s.path for s in store.status(name)[0].savepoints]
    assert kept == taken[-2:]
    for path in taken:
        present = bool(bucket.objects(path.rstrip("/") + "/"))
        assert present == (path in kept), f"{path}: kept {kept}"

    # The work that deleted them measures what is left; a later cycle writes it to the status
    # (until then the status holds the measurement from before the deletion).
    def measured_after() -> StoredState | None:
        now = store.status(name)[0].stored
        return now if now is not None and now.attempts <= 2 else None

    stored = wait_until(measured_after, 30, "what the job stores measured after the deletion")
    objects = bucket.objects(directory.rstrip("/") + "/")
    assert stored.savepoints == 2
    assert stored.objects >= len(objects) > 0
    shown = control.cli("describe", name)
    assert "storage " in shown and f"under {directory}" in shown
    assert "retention    the current attempt's checkpoints and those of 1 earlier" in shown


# -- jars on S3 ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example_jar_on_s3(cluster: Any, bucket: Bucket, s3: S3Server) -> tuple[str, str]:
    """The example job's jar in the bucket: its URI and SHA-256."""
    uri = s3.uri("jars/examples/flinksched-example.jar")
    jar: Path = cluster.example_jar
    bucket.put(uri, jar)
    return uri, hashlib.sha256(jar.read_bytes()).hexdigest()


def test_a_jar_from_s3_runs_on_the_session_cluster_checked_against_its_sha256(
        control: ControlPlane, store: Store, example_jar_on_s3: tuple[str, str]) -> None:
    uri, digest = example_jar_on_s3
    control.write_job("s3-jar", job={"jarURI": uri, "jarSHA256": digest})
    control.write_job("s3-jar-wrong-sha", job={"jarURI": uri, "jarSHA256": "0" * 64},
                      restartPolicy={"maxRestarts": 1, "backoff": {"initial": "0s", "max": "1s"}})
    control.start_master()
    control.start_worker(slots=2)
    running(store, "s3-jar", 1, checkpointed=False)
    # Refused at each submission, though the same jar is uploaded for the other job.
    refused = wait_until(lambda: status_if(store, "s3-jar-wrong-sha",
                                           lambda s: s.phase == Phase.CRASH_LOOP), 60,
                         "the jar with the wrong digest refused until CrashLoopBackOff")
    assert f"jar {uri} has SHA-256 {digest}, but the spec says {'0' * 64}" in refused.last_failure
    assert control.cluster.submissions("s3-jar-wrong-sha") == []


def test_a_jar_from_s3_runs_on_a_cluster_of_the_jobs_own(
        control: ControlPlane, store: Store, example_jar_on_s3: tuple[str, str],
        s3: S3Server) -> None:
    uri, digest = example_jar_on_s3
    control.write_job("s3-jar-own", cluster=OWN_CLUSTER, job={"jarURI": uri, "jarSHA256": digest},
                      config=state_on(s3, control.root.strip("/")))
    control.start_master()
    control.start_worker()
    status = running(store, "s3-jar-own", 1, timeout=OWN_CLUSTER_START_SECONDS)
    assert status.cluster_url and status.cluster_url != control.cluster.rest_url
    assert status.last_checkpoint is not None and status.last_checkpoint.path.startswith("s3://")


# -- storage that is wrong -------------------------------------------------------------------
def reason_when(store: Store, name: str, phase: Phase, timeout: float = 60) -> str:
    status = wait_until(lambda: status_if(store, name, lambda s: s.phase == phase), timeout,
                        f"{name} {phase}")
    return status.reason


def test_rotated_credentials_hold_the_failed_job_until_they_are_right_again(
        control: ControlPlane, store: Store, s3: S3Server, bucket: Bucket) -> None:
    """The worker's credentials stop working (rotated under it): the job that fails cannot
    look for its newest checkpoint, so it waits in StorageUnreachable naming the URI (never
    empty state, never an older point), the job on local disk runs on, and with the right
    credentials it restarts from its newest checkpoint."""
    config = state_on(s3, control.root.strip("/"))
    directory = config["execution.checkpointing.dir"]
    marker = control.workdir / "fail-once"
    control.write_job("s3-rotated", config=config, args=["--fail-marker", str(marker)])
    control.write_job("local-beside")
    control.start_master()
    control.start_worker(slots=2)
    first = running(store, "s3-rotated", 1)
    running(store, "local-beside", 1, checkpointed=False)
    control.processes["worker-a"].kill()
    control.processes["worker-a"].wait(10)
    control.start_worker("worker-b", slots=2, env={"AWS_SECRET_ACCESS_KEY": "rotated-away"})
    wait_until(lambda: status_if(store, "s3-rotated", lambda s: s.worker == "worker-b"), 60,
               "worker-b owning the job")
    marker.touch()
    reason = reason_when(store, "s3-rotated", Phase.STORAGE_UNREACHABLE)
    assert directory in reason and "rotated-away" not in reason, reason
    assert "Traceback" not in control.log("worker-b")
    assert "rotated-away" not in control.log("worker-b"), "a secret in the log"
    holds_for(lambda: control.cluster.submissions("s3-rotated") == [first.flink_job_id]
              and store.status("local-beside")[0].phase == Phase.RUNNING, 3,
              "nothing submitted, the other job running")
    assert "rotated-away" not in json.dumps(store.status("s3-rotated")[0].to_json())

    control.processes["worker-b"].terminate()
    control.processes["worker-b"].wait(15)
    control.start_worker("worker-c", slots=2)
    after = running(store, "s3-rotated", 2)
    newest = bucket.checkpoints(directory, first.flink_job_id)[-1]
    assert restored(control, after)["external_path"].rstrip("/").endswith(
        f"{first.flink_job_id}/chk-{newest}")


def test_a_missing_bucket_and_a_dead_endpoint_are_named_and_spare_the_other_jobs(
        control: ControlPlane, store: Store, s3: S3Server) -> None:
    control.write_job("no-bucket", config={
        "execution.checkpointing.dir": "s3://no-such-bucket/checkpoints"})
    control.write_job("local-fine")
    control.start_master()
    control.start_worker(slots=2)
    reason = reason_when(store, "no-bucket", Phase.STORAGE_UNREACHABLE)
    assert "s3://no-such-bucket/checkpoints" in reason, reason
    running(store, "local-fine", 1, checkpointed=False)
    assert control.cluster.submissions("no-bucket") == []

    # A worker whose store endpoint is dead takes the jobs over, and is the only one a new
    # job on S3 can go to (the one before it would start it, then hand it over running):
    # the job waits, naming its storage.
    control.start_worker("worker-b", slots=3,
                         env={"AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    control.processes["worker-a"].terminate()
    control.processes["worker-a"].wait(15)
    control.write_job("s3-dead-endpoint", config=state_on(s3, control.root.strip("/")))
    for name in ("no-bucket", "s3-dead-endpoint"):
        reason = reason_when(store, name, Phase.STORAGE_UNREACHABLE)
        assert "s3://" in reason and "Traceback" not in reason, reason
    assert "Traceback" not in control.log("worker-b")


def test_a_restore_point_without_its_metadata_is_refused_naming_it(
        control: ControlPlane, store: Store, s3: S3Server, bucket: Bucket,
        tmp_path: Path) -> None:
    """As the initial savepoint, the job holds in NoRestorePoint; as `restart --from`, the
    command refuses it before anything is asked of the job."""
    empty = s3.uri(f"{control.root.strip('/')}/savepoints/savepoint-empty")
    stray = tmp_path / "part-0"
    stray.write_bytes(b"not a savepoint")
    bucket.put(f"{empty}/part-0", stray)
    control.write_job("no-metadata", job={"initialSavepointPath": empty})
    control.start_master()
    control.start_worker()
    reason = reason_when(store, "no-metadata", Phase.NO_RESTORE_POINT)
    assert f"{empty} has no _metadata object" in reason, reason
    assert control.cluster.submissions("no-metadata") == []

    from click.testing import CliRunner

    from scheduler.cli.main import cli

    result = CliRunner().invoke(cli, ["--zk", control.cluster.zk_hosts, "--root", control.root,
                                      "restart", "no-metadata", "--from", empty, "--yes"])
    assert result.exit_code == 2, result.output
    assert f"{empty} has no _metadata object" in result.output
