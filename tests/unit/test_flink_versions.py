"""Flink versions: read from a cluster's answer, what each lacks, the keys 2.0 renamed, what
workers record of a cluster, and the dev stack's FLINK_HOMEs of 1.20 (a source archive) and
2.x (wheels) with each version's configuration keys."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from common.errors import DevStackError, FlinkUnreachable, StoreError
from common.flink.versions import CHECKPOINT_DIR, SAVEPOINT_DIR, FlinkVersion, parse_version
from common.store.clusterseen import ClusterSeen, parse_cluster_seen, version_notes
from scheduler.devstack import flinkhome
from worker.clusterreport import ClusterReporter


@pytest.mark.parametrize(("text", "parsed", "supported", "listener"), [
    ("1.20.3", (1, 20, 3), True, False),
    ("2.3.0", (2, 3, 0), True, True),
    ("2.2-SNAPSHOT", (2, 2, 0), True, True),
    ("2.3.0-sim", (2, 3, 0), True, True),
    ("1.19.1", (1, 19, 1), False, False),
    ("3.0.0", (3, 0, 0), False, True),
])
def test_versions_are_read_as_clusters_spell_them(text: str, parsed: tuple[int, int, int],
                                                  supported: bool, listener: bool) -> None:
    version = FlinkVersion.parse(text)
    assert version is not None
    assert (version.major, version.minor, version.patch) == parsed
    assert str(version) == text
    assert version.supported is supported
    assert version.has_status_listener is listener


@pytest.mark.parametrize("junk", ["", "latest", "v2.3.0", 12, None, ["2.3.0"]])
def test_anything_else_is_no_version(junk: object) -> None:
    assert FlinkVersion.parse(junk) is None


@pytest.mark.parametrize("asked", ["1.20", "2.3.0-rc1", "two", ""])
def test_a_version_to_run_must_be_a_release(asked: str) -> None:
    with pytest.raises(ValueError, match=r"not a Flink release such as 1\.20\.3"):
        parse_version(asked)


def test_renamed_keys_are_read_under_either_name_a_jobs_own_first() -> None:
    cluster_1x = {"state.checkpoints.dir": "file:///lts", "state.savepoints.dir": "file:///sp"}
    cluster_2x = {"execution.checkpointing.dir": "s3://b/ckpt"}
    assert CHECKPOINT_DIR.read(cluster_1x) == "file:///lts"
    assert CHECKPOINT_DIR.read(cluster_2x) == "s3://b/ckpt"
    assert SAVEPOINT_DIR.read(cluster_1x) == "file:///sp"
    assert CHECKPOINT_DIR.read({"state.checkpoints.dir": "file:///job"}, cluster_2x) == (
        "file:///job")
    assert CHECKPOINT_DIR.read({"execution.checkpointing.dir": ""}, cluster_1x) == "file:///lts"
    assert CHECKPOINT_DIR.read({}, {}) is None


def test_what_a_version_lacks_is_said() -> None:
    assert version_notes(FlinkVersion.parse("2.3.0")) == []
    [lts] = version_notes(FlinkVersion.parse("1.20.3"))
    assert lts.startswith("no status listener: Flink 1.20 has no job status listeners")
    old = version_notes(FlinkVersion.parse("1.18.1"))
    assert "Flink 1.18.1 is not a version flinksched supports (1.20 and 2.x)" in old[0]
    assert version_notes(None) == ["the cluster's version is not one flinksched can read"]


def test_what_workers_saw_round_trips_and_junk_is_rejected_by_name() -> None:
    seen = ClusterSeen("lts", "1.20.3", "http://jm:8081", 1_800_000_000.5, "worker-a")
    assert parse_cluster_seen("lts", seen.to_bytes()) == seen
    good = json.loads(seen.to_bytes())
    for key, bad in [("flinkVersion", ""), ("restUrl", 5), ("seenBy", None),
                     ("seenAt", -1), ("seenAt", True), ("seenAt", "yesterday")]:
        with pytest.raises(StoreError, match=f"cluster lts: {key}"):
            parse_cluster_seen("lts", json.dumps({**good, key: bad}).encode())
    with pytest.raises(StoreError, match="not JSON"):
        parse_cluster_seen("lts", b"\xff")


class Recorded:
    def __init__(self) -> None:
        self.writes: list[ClusterSeen] = []

    def put_cluster_seen(self, seen: ClusterSeen) -> None:
        self.writes.append(seen)


class Reporting:
    rest_url = "http://jm:8081"

    def __init__(self, *answers: FlinkVersion | Exception | None) -> None:
        self.answers = list(answers)
        self.turns = threading.Semaphore(1)  # a cluster's turns, all taken while one is held

    def turn(self) -> threading.Semaphore:
        return self.turns

    def version(self) -> FlinkVersion | None:
        assert not self.turns.acquire(blocking=False), "asked in a turn, as supervisors ask"
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_worker_writes_a_clusters_version_once_and_again_when_it_changes() -> None:
    store = Recorded()
    reporter = ClusterReporter(store, "worker-a", clock=lambda: 100.0)  # type: ignore[arg-type]
    lts, new = FlinkVersion.parse("1.20.3"), FlinkVersion.parse("2.3.0")
    target = Reporting(lts, lts, FlinkUnreachable("down"), None, new)
    # Many jobs on one cluster: asked once a pass.
    reporter.report([("main", target), ("main", target), ("", target)])  # type: ignore[list-item]
    assert [w.flink_version for w in store.writes] == ["1.20.3"]
    for _ in range(3):  # unchanged, unreachable, no version: nothing written
        reporter.report([("main", target)])  # type: ignore[list-item]
    assert len(store.writes) == 1
    reporter.report([("main", target)])  # type: ignore[list-item]
    assert [(w.cluster, w.flink_version, w.seen_by, w.seen_at) for w in store.writes] == [
        ("main", "1.20.3", "worker-a", 100.0), ("main", "2.3.0", "worker-a", 100.0)]
    # Registered again in a new session (ZooKeeper may have lost the node): written again.
    reporter.forget()
    reporter.report([("main", Reporting(new))])  # type: ignore[list-item]
    assert [w.flink_version for w in store.writes] == ["1.20.3", "2.3.0", "2.3.0"]


def test_the_dev_stack_runs_releases_of_the_tested_lines_only() -> None:
    assert flinkhome.checked_version("1.20.3").line == "1.20"
    assert flinkhome.checked_version("2.2.1").line == "2.2"
    with pytest.raises(DevStackError, match=r"1\.19\.3 is not one the dev stack runs; it runs "
                                            r"a release of 1\.20, 2\.2, 2\.3"):
        flinkhome.checked_version("1.19.3")
    with pytest.raises(DevStackError, match="FLINKSCHED_FLINK_VERSION: 'latest' is not"):
        flinkhome.checked_version("latest")


@pytest.fixture
def shipped_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "config.yaml").write_text("env:\n  java:\n    opts:\n      all: -Dx=1\n")
    (home / "conf" / "log4j.properties").write_text("")
    return home


@pytest.mark.parametrize(("version", "keys"), [
    ("1.20.3", {"state.checkpoints.dir", "state.savepoints.dir",
                "state.checkpoints.num-retained"}),
    ("2.3.0", {"execution.checkpointing.dir", "execution.checkpointing.savepoint-dir",
               "execution.checkpointing.num-retained"}),
])
def test_each_versions_configuration_uses_its_own_key_names(
        shipped_home: Path, tmp_path: Path, version: str, keys: set[str]) -> None:
    path = flinkhome.write_flink_conf(shipped_home, tmp_path / "conf", tmp_path / "state",
                                      flinkhome.FlinkPorts(), version=version)
    written = YAML(typ="safe").load(path.read_text())
    checkpointing = {key for key in written if key.startswith(("state.", "execution.check"))}
    retention = "execution.checkpointing.externalized-checkpoint-retention"
    assert checkpointing == keys | {retention}  # the same name in both
    assert written["env.java.opts.all"] == "-Dx=1"


def test_a_1x_cluster_is_never_given_the_status_listener(shipped_home: Path,
                                                         tmp_path: Path) -> None:
    push = flinkhome.PushTarget("127.0.0.1:2181", "/flinksched", "default")
    with pytest.raises(DevStackError, match=r"Flink 1\.20\.3 cannot load the status listener"):
        flinkhome.write_flink_conf(shipped_home, tmp_path / "conf", tmp_path / "state",
                                   flinkhome.FlinkPorts(), push=push, version="1.20.3")


def test_a_source_archive_gives_its_jars_and_nothing_outside_the_home(tmp_path: Path) -> None:
    archive = tmp_path / "apache-flink-libraries-1.20.3.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        def add(name: str, data: bytes = b"jar", kind: bytes = tarfile.REGTYPE) -> None:
            member = tarfile.TarInfo(name)
            member.type = kind
            member.size = len(data) if kind == tarfile.REGTYPE else 0
            if kind == tarfile.SYMTYPE:
                member.linkname = "/etc/passwd"
            tar.addfile(member, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("apache-flink-libraries-1.20.3/deps/lib/flink-dist-1.20.3.jar")
        add("apache-flink-libraries-1.20.3/deps/bin/bash-java-utils.jar")
        add("apache-flink-libraries-1.20.3/deps/licenses/LICENSE.x")  # not a FLINK_HOME part
        add("apache-flink-libraries-1.20.3/setup.py")
        add("apache-flink-libraries-1.20.3/deps/lib/../../../escaped.jar")
        add("apache-flink-libraries-1.20.3/deps/lib/link.jar", kind=tarfile.SYMTYPE)
    home = tmp_path / "home"
    flinkhome._unpack_source_archive(archive, home)
    found = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert found == ["bin/bash-java-utils.jar", "lib/flink-dist-1.20.3.jar"]
    assert not (tmp_path / "escaped.jar").exists()
