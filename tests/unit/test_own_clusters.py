"""Jobs on a cluster of their own, without servers: the spec of the application kind, what
an attempt's cluster is started with, when the decision releases what is left of a job's
clusters, how the target reads a launcher's clusters (lost, starting, never answering), and
how the local launcher checks what it reads from disk and /proc."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from common.errors import ClusterLaunchFailed, FlinkUnreachable, JobAlreadySubmitted
from common.flink.jobids import flink_job_id
from common.flink.jobstate import JobState
from common.flink.versions import FlinkVersion
from common.processes import process_start
from common.spec.configdir import ConfigSet, Sourced
from common.spec.deployments import Deployment
from common.spec.models import FlinkCluster, FlinkJob
from common.store.records import JobRecord, JobStatus, Phase
from scheduler.master.changes import build_plan, cluster_document, submit_hash
from tests.unit.decisions_util import observe, record, settle, status, suspended, with_flink
from worker.clients import FlinkClients
from worker.decide.decisions import BackOff, Nothing, Submit
from worker.decide.moves import LeftBehind, left_behind
from worker.distributions import Distribution, choose_distribution, distribution
from worker.programs.jars import JarCache, JarError
from worker.targets.application.cluster import ApplicationCluster, NoLauncher, Running
from worker.targets.application.launch import REQUIRED, flat_config, launch_of
from worker.targets.application.local import LocalLauncher, RunRecord, read_record

OWN: dict[str, Any] = {"metadata": {"name": "own"}, "spec": {
    "mode": "application", "jobManager": {"resource": {"memory": "768m"}},
    "taskManager": {"resource": {"memory": "1g"}, "replicas": 2},
    "flinkConfiguration": {"execution.checkpointing.dir": "file:///ckpt",
                           "state.backend.type": "rocksdb", "web.refresh-interval": "2000"}}}
JOB = "clicks"


def own_record(**job: Any) -> JobRecord:
    spec = {"cluster": "own", "job": {"jarURI": "/jobs/clicks.jar", "entryClass": "a.Main",
                                      "args": ["--in", "k"], "parallelism": 3, **job},
            "flinkConfiguration": {"state.backend.type": "hashmap",
                                   "execution.checkpointing.interval": "5s"}}
    return JobRecord(JOB, spec, OWN, 1, "hash", "clicks.yaml")


# -- the spec ---------------------------------------------------------------------------------
def cluster(spec: dict[str, Any]) -> FlinkCluster:
    return FlinkCluster.model_validate({"apiVersion": "flinksched/v1", "kind": "FlinkCluster",
                                        "metadata": {"name": "c"}, "spec": spec})


@pytest.mark.parametrize(("spec", "complaint"), [
    ({}, "a session cluster needs restUrl"),
    ({"restUrl": "http://f:8081", "image": "flink:2"}, "image: only for mode: application"),
    ({"restUrl": "http://f:8081", "taskManager": {"replicas": 2}},
     "taskManager: only for mode: application"),
    ({"mode": "application", "restUrl": "http://f:8081"}, "restUrl: not for mode: application"),
    ({"mode": "application", "jobManager": {"resource": {"memory": "lots"}}},
     "String should match pattern"),
    ({"mode": "application", "taskManager": {"replicas": 0}}, "greater than or equal to 1"),
    ({"mode": "application", "flinkVersion": "2"}, "String should match pattern"),
    ({"mode": "application", "jobManager": {"resources": {}}}, "Extra inputs are not permitted"),
])
def test_each_kind_of_cluster_takes_only_its_own_fields(spec: dict[str, Any],
                                                        complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        cluster(spec)


def test_a_session_clusters_record_and_hashes_are_as_before_the_application_kind() -> None:
    """Upgrading flinksched makes no new generation, and restarts no job, anywhere."""
    session = cluster({"restUrl": "http://flink:8081"})
    document = cluster_document(session)
    assert document == {"apiVersion": "flinksched/v1", "kind": "FlinkCluster",
                        "metadata": {"name": "c", "labels": {}},
                        "spec": {"restUrl": "http://flink:8081", "tls": None, "auth": None}}
    spec = {"job": {"jarURI": "/a.jar"}, "flinkConfiguration": {}}
    assert submit_hash(spec, document) == "80a24d7a285661bd"  # as flinksched 0.x hashed it


def test_a_change_to_an_application_cluster_is_a_change_of_what_its_jobs_run_with() -> None:
    spec = {"job": {"jarURI": "/a.jar"}, "flinkConfiguration": {}}
    small = cluster_document(cluster({"mode": "application"}))
    big = cluster_document(cluster({"mode": "application",
                                    "taskManager": {"resource": {"memory": "4g"}}}))
    assert small["spec"]["mode"] == "application" and "restUrl" not in small["spec"]
    assert submit_hash(spec, small) != submit_hash(spec, big)


# -- what an attempt's cluster is started with ------------------------------------------------
def test_the_jobmanager_runs_the_attempt_from_its_restore_point_with_its_job_id() -> None:
    job_id = flink_job_id(JOB, 4)
    launch = launch_of(own_record(allowNonRestoredState=True), job_id, "file:///ckpt/x/chk-9",
                  "/jobs/clicks.jar", {"rest.port": "31000"})
    args = launch.jobmanager_args()
    assert args[:10] == ["--job-id", job_id, "--jars", "/jobs/clicks.jar", "--job-classname",
                         "a.Main", "--fromSavepoint", "file:///ckpt/x/chk-9",
                         "--allowNonRestoredState", args[9]]
    assert args[-2:] == ["--in", "k"], "the job's own arguments come last"
    assert launch.taskmanager_args() == [a for a in args if a.startswith("-D")]
    assert launch.taskmanagers == 2


def test_settings_are_the_templates_then_the_jobs_then_the_launchers_then_flinkscheds() -> None:
    settings = launch_of(own_record(), flink_job_id(JOB, 1), "", "/j.jar",
                    {"rest.port": "31000", "high-availability.type": "ZOOKEEPER"}).settings
    assert settings["state.backend.type"] == "hashmap", "the job's setting wins"
    assert settings["execution.checkpointing.dir"] == "file:///ckpt", "the template's"
    assert settings["web.refresh-interval"] == "2000", "a user's refresh interval wins"
    assert settings["rest.port"] == "31000"
    assert {k: settings[k] for k in REQUIRED} == REQUIRED, "flinksched's cannot be overridden"
    assert settings["jobmanager.memory.process.size"] == "768m"
    assert settings["taskmanager.memory.process.size"] == "1g"
    assert settings["flinksched.push.cluster"] == "own.clicks", (
        "a listener heartbeats as this job's cluster, never as a configured one")
    assert settings["parallelism.default"] == "3"
    assert settings["taskmanager.numberOfTaskSlots"] == "2", "3 subtasks on 2 TaskManagers"
    assert settings["execution.checkpointing.externalized-checkpoint-retention"] == (
        "RETAIN_ON_CANCELLATION")
    no_restore = launch_of(own_record(), flink_job_id(JOB, 1), "", "/j.jar").jobmanager_args()
    assert "--fromSavepoint" not in no_restore and "--allowNonRestoredState" not in no_restore


def test_flink_configuration_files_read_flat_whatever_their_nesting() -> None:
    assert flat_config({"execution": {"checkpointing": {"dir": "file:///c", "interval": 5}},
                        "rest.port": 8081, "web.cancel.enable": True, "empty": None}) == {
        "execution.checkpointing.dir": "file:///c", "execution.checkpointing.interval": "5",
        "rest.port": "8081", "web.cancel.enable": "true"}
    assert flat_config(["not", "a", "map"]) == {}


# -- the decision releases what is left --------------------------------------------------------
@pytest.mark.parametrize("phase", [Phase.SUSPENDED, Phase.REMOVED])
def test_a_held_job_whose_attempt_ended_releases_its_clusters(phase: Phase) -> None:
    decision = settle(observe(status(phase), JobState.FINISHED, hold=suspended()))
    assert isinstance(decision.action, Nothing) and decision.release


def test_an_attempt_that_runs_or_a_start_releases_nothing() -> None:
    assert not settle(observe(status(Phase.RUNNING), JobState.RUNNING)).release
    restarted = settle(observe(status(Phase.RUNNING), JobState.FAILED))
    assert isinstance(restarted.action, Submit) and not restarted.release
    unknown = settle(with_flink(observe(status(Phase.RUNNING), None),
                                unreachable="connection refused"))
    assert not unknown.release, "an unreachable cluster may still run the attempt"


def test_a_job_backing_off_releases_its_failed_cluster() -> None:
    job = record(restartPolicy={"backoff": {"initial": "60s"}})
    failed = status(Phase.RECOVERING, restart_times=(1_800_000_000.0 - 5,),
                    last_failure="FAILED: x")
    decision = settle(observe(failed, JobState.FAILED, job=job))
    assert isinstance(decision.action, BackOff) and decision.release


# -- the target, over a launcher -----------------------------------------------------------------
STARTUP_GRACE = 120.0


@dataclass
class FakeLauncher:
    found: list[Running] = field(default_factory=list)
    startup_grace: float = STARTUP_GRACE
    torn: list[str] = field(default_factory=list)
    launched: list[tuple[str, str]] = field(default_factory=list)
    words: str = ""

    def clusters(self, job: str) -> list[Running]:
        return list(self.found)

    def launch(self, record: JobRecord, job_id: str, restore_path: str) -> Running:
        self.launched.append((job_id, restore_path))
        started = Running(job_id, "http://127.0.0.1:9", True, time.time())
        self.found.append(started)
        return started

    def tear_down(self, job: str, job_id: str) -> None:
        self.torn.append(job_id)
        self.found = [c for c in self.found if c.job_id != job_id]

    def base_config(self, record: JobRecord) -> dict[str, str]:
        return {"execution.checkpointing.dir": "file:///base"}

    def last_words(self, job: str, job_id: str) -> str:
        return self.words


class FakeClient:
    def __init__(self, states: dict[str, str | None] | Exception) -> None:
        self.states = states

    def job_state(self, job_id: str) -> str | None:
        if isinstance(self.states, Exception):
            raise self.states
        return self.states.get(job_id)

    def root_exception(self, job_id: str) -> str:
        return "java.lang.IllegalStateException: boom"


def target_over(launcher: FakeLauncher, answers: dict[str, str | None] | Exception,
                monkeypatch: pytest.MonkeyPatch) -> ApplicationCluster:
    clients = FlinkClients()
    monkeypatch.setattr(clients, "get", lambda url: FakeClient(answers))
    return ApplicationCluster(JOB, own_record(), launcher, clients)


ID1, ID2 = flink_job_id(JOB, 1), flink_job_id(JOB, 2)


def test_an_attempt_without_a_cluster_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    target = target_over(FakeLauncher(), {}, monkeypatch)
    assert target.state(ID1, listable=False, since=0.0) == (None, False)


def test_a_jobmanager_that_exited_fails_its_attempt_with_its_last_words(
        monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = FakeLauncher([Running(ID1, "http://127.0.0.1:9", False, time.time() - 60)],
                            words="java.lang.OutOfMemoryError: Java heap space")
    target = target_over(launcher, {}, monkeypatch)
    assert target.state(ID1, listable=False, since=0.0) == ("FAILED", False)
    assert launcher.torn == [ID1]
    cause = target.root_exception(ID1)
    assert cause == (f"the cluster of {ID1} ended: its JobManager exited; its JobManager's "
                     "last words: java.lang.OutOfMemoryError: Java heap space")
    assert target.state(ID1, listable=False, since=0.0) == ("FAILED", False), "remembered"


def test_a_starting_cluster_is_initializing_until_its_grace_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = FakeLauncher([Running(ID1, "http://127.0.0.1:9", True, time.time())])
    down = FlinkUnreachable("connection refused")
    assert target_over(launcher, down, monkeypatch).state(ID1, listable=False, since=0.0) == (
        "INITIALIZING", False)
    assert target_over(launcher, {ID1: None}, monkeypatch).state(
        ID1, listable=False, since=0.0) == ("INITIALIZING", False), "main() not run yet"
    late = FakeLauncher([Running(ID1, "http://127.0.0.1:9", True,
                                 time.time() - STARTUP_GRACE - 1)])
    target = target_over(late, down, monkeypatch)
    assert target.state(ID1, listable=False, since=0.0) == ("FAILED", False)
    assert late.torn == [ID1] and "did not answer within 120s" in target.root_exception(ID1)


def test_a_cluster_that_answered_before_is_waited_for_when_it_stops_answering(
        monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = FakeLauncher([Running(ID1, "http://127.0.0.1:9", True,
                                     time.time() - STARTUP_GRACE - 1)])
    answers: dict[str, str | None] = {ID1: "RUNNING"}
    clients = FlinkClients()
    client = FakeClient(answers)
    monkeypatch.setattr(clients, "get", lambda url: client)
    target = ApplicationCluster(JOB, own_record(), launcher, clients)
    assert target.state(ID1, listable=False, since=0.0) == ("RUNNING", False)
    client.states = FlinkUnreachable("timed out")
    with pytest.raises(FlinkUnreachable):
        target.state(ID1, listable=False, since=0.0)
    assert launcher.torn == [], "a running cluster is not torn down for an outage"


def test_a_submission_tears_down_the_jobs_other_clusters_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = FakeLauncher([Running(ID1, "http://127.0.0.1:9", True, time.time())])
    target = target_over(launcher, {ID1: "FAILED"}, monkeypatch)
    target.submit(own_record(), ID2, "file:///ckpt/chk-3")
    assert launcher.torn == [ID1] and launcher.launched == [(ID2, "file:///ckpt/chk-3")]
    assert target.root_exception(ID1) == "java.lang.IllegalStateException: boom", (
        "a FAILED attempt's cause is read before its cluster goes")
    with pytest.raises(JobAlreadySubmitted):
        target.submit(own_record(), ID2, "")
    assert target.attempts() == {ID2: "INITIALIZING"}
    assert target.config() == {"execution.checkpointing.dir": "file:///base"}


def test_release_tears_down_every_cluster_of_the_job_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = FakeLauncher([Running(ID1, "", False, 0.0), Running(ID2, "", False, 0.0)])
    target = target_over(launcher, {}, monkeypatch)
    target.release()
    target.release()
    assert launcher.torn == [ID1, ID2]


def test_a_worker_told_nothing_of_clusters_refuses_such_jobs_naming_what_it_needs() -> None:
    with pytest.raises(ClusterLaunchFailed, match="FLINK_HOME"):
        NoLauncher().launch(own_record(), ID1, "")


# -- the local launcher's checks -------------------------------------------------------------------
def write(run_dir: Path, document: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "cluster.json").write_text(json.dumps(document))
    return run_dir


def test_a_run_record_is_read_only_when_every_field_is_what_the_launcher_writes(
        tmp_path: Path) -> None:
    started = time.time()
    good = {"jobId": ID1, "restPort": 31000, "started": started,
            "processes": {"jobmanager": [123, 456]}}
    assert read_record(write(tmp_path / ID1, good)) == RunRecord(
        31000, started, {"jobmanager": (123, 456)})
    for broken in ({**good, "jobId": ID2}, {**good, "restPort": 70000},
                   {**good, "restPort": True}, {**good, "started": time.time() + 3600},
                   {**good, "started": "yesterday"}, {**good, "processes": {"jm": [1]}},
                   {**good, "processes": {"jm": [0, 5]}}, {**good, "processes": []}, ["x"]):
        assert read_record(write(tmp_path / ID1, broken)) is None, broken
    (tmp_path / ID1 / "cluster.json").write_text("{not json")
    assert read_record(tmp_path / ID1) is None
    assert read_record(tmp_path / "nothing") is None


def test_a_process_is_known_by_its_pid_and_start_time() -> None:
    mine = process_start(os.getpid())
    assert mine is not None and mine > 0
    assert process_start(2**22 + 12345) is None


def test_the_distribution_of_the_clusters_flink_line_is_chosen(tmp_path: Path) -> None:
    homes = []
    for version in ("2.3.0", "1.20.3"):
        (tmp_path / version / "lib").mkdir(parents=True)
        (tmp_path / version / "lib" / f"flink-dist-{version}.jar").touch()
        homes.append(distribution(tmp_path / version))
    assert homes[1].version == FlinkVersion.parse("1.20.3")
    assert choose_distribution(homes, "1.20").home == tmp_path / "1.20.3"
    assert choose_distribution(homes, None).home == tmp_path / "2.3.0", "the first by default"
    with pytest.raises(ClusterLaunchFailed, match=r"asks for Flink 2\.2 .*\(1\.20\.3\)"):
        choose_distribution(homes, "2.2")
    with pytest.raises(ClusterLaunchFailed, match="give the worker FLINK_HOME"):
        choose_distribution([], None)
    assert distribution(tmp_path / "nowhere") == Distribution(tmp_path / "nowhere", None)


def test_a_status_names_the_attempts_own_cluster_and_reads_only_a_url() -> None:
    kept = JobStatus(cluster_url="http://localhost:31000")
    assert JobStatus.from_json(kept.to_json()) == kept
    assert JobStatus.from_json({**kept.to_json(), "clusterUrl": "javascript:alert(1)"}) == (
        JobStatus())


# -- a job moving between clusters -------------------------------------------------------------
def test_a_move_keeps_the_cluster_left_until_the_next_move() -> None:

    def config(cluster: str, rate: str) -> ConfigSet:
        job = FlinkJob.model_validate({
            "apiVersion": "flinksched/v1", "kind": "FlinkJob", "metadata": {"name": JOB},
            "spec": {"cluster": cluster, "job": {"jarURI": "/j.jar", "args": [rate]}}})
        clusters = {name: Sourced(FlinkCluster.model_validate({
            "apiVersion": "flinksched/v1", "kind": "FlinkCluster", "metadata": {"name": name},
            "spec": spec}), "c.yaml", 1) for name, spec in (
                ("default", {"restUrl": "http://flink:8081"}), ("own", {"mode": "application"}))}
        return ConfigSet(jobs={JOB: Sourced(job, "j.yaml", 1)}, clusters=clusters)
    def next_record(current: JobRecord | None, cluster: str, rate: str) -> JobRecord:
        [change] = build_plan(config(cluster, rate), {JOB: current} if current else {}).changes
        assert change.record is not None
        return change.record

    first = next_record(None, "default", "1")
    assert first.previous_cluster is None
    moved = next_record(first, "own", "1")
    assert moved.previous_cluster == first.cluster
    assert moved.deployment is Deployment.APPLICATION
    assert "moving from cluster default to own" in build_plan(
        config("own", "1"), {JOB: first}).changes[0].action
    changed_again = next_record(moved, "own", "2")
    assert changed_again.previous_cluster == first.cluster, "kept until the next move"
    back = next_record(changed_again, "default", "2")
    assert back.previous_cluster == moved.cluster
    assert JobRecord.from_json(JOB, back.to_json()) == back
    for junk in (["not", "a", "cluster"], {"metadata": {}, "spec": {"mode": "session"}}):
        read = JobRecord.from_json(JOB, {**back.to_json(), "previousCluster": junk})
        assert read.previous_cluster is None, junk


def test_the_attempt_is_acted_on_where_it_runs_until_it_ended_there() -> None:
    old, new, orphan = flink_job_id(JOB, 3), flink_job_id(JOB, 4), flink_job_id(JOB, 2)
    assert left_behind({old: "RUNNING"}, old) == LeftBehind(runs_there=True)
    assert left_behind({old: "FINISHED"}, old) == LeftBehind(runs_there=True), (
        "its savepoint and checkpoints are read there before the next starts")
    assert left_behind({old: "FINISHED"}, new) == LeftBehind(runs_there=False, done=True)
    assert left_behind({old: "FINISHED", orphan: "RUNNING"}, new) == LeftBehind(
        runs_there=False, orphans=(orphan,))
    assert left_behind({}, new) == LeftBehind(runs_there=False, done=True)
    assert left_behind({old: "RUNNING"}, "") == LeftBehind(runs_there=True), (
        "a status that lost its attempt adopts it where it runs, never cancels it")


def test_a_jar_that_is_not_the_one_the_spec_names_starts_no_cluster(tmp_path: Path) -> None:
    home = tmp_path / "flink"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / "flink-dist-2.3.0.jar").touch()
    jar = tmp_path / "clicks.jar"
    jar.write_bytes(b"not the jar the spec names")
    launcher = LocalLauncher(tmp_path / "apps", [home], JarCache(tmp_path / "cache"))
    wrong = own_record(jarURI=str(jar), jarSHA256="0" * 64)
    with pytest.raises(JarError, match=r"has SHA-256 .* but the spec says 0000"):
        launcher.launch(wrong, ID1, "")
    assert not (tmp_path / "apps").exists(), "nothing started, nothing written"
    outside = LocalLauncher(tmp_path / "apps", [home],
                            JarCache(tmp_path / "cache", ("/opt/flink/usrlib",)))
    with pytest.raises(JarError, match="not in an allowed location"):
        outside.launch(own_record(jarURI=str(jar)), ID1, "")


def test_a_jobmanagers_last_words_are_its_last_warning_error_or_exception(
        tmp_path: Path) -> None:
    launcher = LocalLauncher(tmp_path / "apps", [], JarCache(tmp_path / "cache"))
    log = tmp_path / "apps" / JOB / ID1 / "log"
    log.mkdir(parents=True)
    out = log / "jobmanager.out"
    out.write_text("2026-11-30 10:00:00,000 INFO  org.apache.flink.X [] - started\n"
                   "java.lang.OutOfMemoryError: Java heap space\n"
                   "\tat org.apache.flink.Y.z(Y.java:1)\n"
                   "2026-11-30 10:00:01,000 INFO  org.apache.flink.X [] - still here\n")
    assert launcher.last_words(JOB, ID1) == (
        f"java.lang.OutOfMemoryError: Java heap space (see {out})")
    out.write_text("2026-11-30 10:00:00,000 INFO  org.apache.flink.X [] - checkpoint 3\n")
    assert launcher.last_words(JOB, ID1) == "", "a SIGKILL leaves no word"
    assert launcher.last_words(JOB, ID2) == "", "no log at all"
