"""A FLINK_HOME laid out from PyPI, one per Flink version, and a Flink configuration for
local work.

`apache-flink` carries bin/ and conf/, `apache-flink-libraries` carries lib/, opt/, plugins/:
as a wheel from 2.0 on, as a source archive with the jars under deps/ before (1.20.x). Both
are fetched with `pip download --no-deps` (installing apache-flink would pull in Beam, pandas
and pyarrow) into a cache directory shared by every checkout on the machine, where homes of
several versions sit side by side.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from common.errors import DevStackError
from common.flink.versions import (
    CHECKPOINT_DIR,
    CHECKPOINT_RETENTION,
    RETAINED_CHECKPOINTS,
    SAVEPOINT_DIR,
    TESTED_LINES,
    FlinkVersion,
    parse_version,
)
from scheduler.devstack.filelock import exclusive
from scheduler.devstack.javabuild import LISTENER_FACTORY

DEFAULT_VERSION = "2.3.0"
LTS_VERSION = "1.20.3"  # the long-term-support line's release the tests run beside the default
FLINK_VERSION = os.environ.get("FLINKSCHED_FLINK_VERSION", "").strip() or DEFAULT_VERSION
LAYOUT = ("bin", "conf", "lib", "opt", "plugins", "log")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flinksched"
    return Path(os.environ.get("FLINKSCHED_CACHE", default))


def flink_home(version: str = FLINK_VERSION) -> Path:
    return cache_dir() / f"flink-{version}"


def dist_jar(home: Path, version: str = FLINK_VERSION) -> Path:
    return home / "lib" / f"flink-dist-{version}.jar"


def checked_version(version: str) -> FlinkVersion:
    """The version the dev stack is asked to run, refused (naming the tested lines) unless it
    is a release of one of them."""
    try:
        parsed = parse_version(version)
    except ValueError as exc:
        raise DevStackError(f"FLINKSCHED_FLINK_VERSION: {exc}") from None
    if parsed.line not in TESTED_LINES:
        raise DevStackError(
            f"FLINKSCHED_FLINK_VERSION: Flink {version} is not one the dev stack runs; it "
            f"runs a release of {', '.join(TESTED_LINES)} (e.g. {LTS_VERSION} or "
            f"{DEFAULT_VERSION})")
    return parsed


def ensure_flink_home(version: str = FLINK_VERSION) -> Path:
    """The laid-out FLINK_HOME of `version`, downloading and unpacking it on first use."""
    checked_version(version)
    home = flink_home(version)
    if dist_jar(home, version).is_file():
        return home
    with exclusive(cache_dir() / f".flink-{version}.lock"):  # one process fetches it
        if not dist_jar(home, version).is_file():
            _fetch(version, home)
    return home


def _fetch(version: str, home: Path) -> None:
    downloads = cache_dir() / "wheels"
    downloads.mkdir(parents=True, exist_ok=True)
    _pip_download(f"apache-flink=={version}", downloads, "--only-binary=:all:")
    # A wheel where PyPI has one; else the source archive, which holds the same jars.
    _pip_download(f"apache-flink-libraries=={version}", downloads, "--prefer-binary")
    staging = Path(tempfile.mkdtemp(prefix=f"flink-{version}-", dir=cache_dir()))
    try:
        for wheel in downloads.glob(f"apache_flink*-{version}-*.whl"):
            _unpack_wheel(wheel, staging)
        for archive in downloads.glob(f"apache[-_]flink[-_]libraries-{version}.tar.gz"):
            _unpack_source_archive(archive, staging)
        for part in ("bin", "conf", "lib"):
            if not (staging / part).is_dir():
                raise DevStackError(f"the Flink {version} packages from PyPI have no {part}/ "
                                    "directory")
        if not dist_jar(staging, version).is_file():
            raise DevStackError(f"the Flink {version} packages from PyPI have no "
                                f"lib/flink-dist-{version}.jar")
        for script in (staging / "bin").iterdir():
            script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        if home.exists():
            shutil.rmtree(home)
        staging.rename(home)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _pip_download(requirement: str, into: Path, *options: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *options,
               "--disable-pip-version-check", "-q", "-d", str(into), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevStackError(f"could not download {requirement} from PyPI: "
                            f"{result.stderr.strip()[-500:]}")


def _unpack_wheel(wheel: Path, target: Path) -> None:
    """pyflink/<part>/... of a wheel, for the parts of LAYOUT."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            parts = member.filename.split("/")
            if len(parts) < 3 or parts[0] != "pyflink" or parts[1] not in LAYOUT:
                continue
            destination = target.joinpath(*parts[1:])
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out)


def _unpack_source_archive(path: Path, target: Path) -> None:
    """<package>/deps/<part>/... of a source archive, for the parts of LAYOUT; regular files
    only (never a link or a path outside `target`)."""
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if (len(parts) < 4 or parts[1] != "deps" or parts[2] not in LAYOUT
                    or not member.isfile() or ".." in parts):
                continue
            destination = target.joinpath(*parts[2:])
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None  # a regular file
            with source, destination.open("wb") as out:
                shutil.copyfileobj(source, out)


@dataclass(frozen=True)
class FlinkPorts:
    rest: int = 8081
    rpc: int = 6123


@dataclass(frozen=True)
class PushTarget:
    """Where the cluster's status listener pushes: flinksched's ZooKeeper and root, and the
    name its FlinkCluster has there."""

    zk_hosts: str
    root: str
    cluster: str
    extra: dict[str, str] = field(default_factory=dict)  # e.g. flinksched.push.queue-capacity

    def settings(self) -> dict[str, str]:
        return {"execution.job-status-changed-listeners": LISTENER_FACTORY,
                "flinksched.push.zookeeper.quorum": self.zk_hosts,
                "flinksched.push.zookeeper.root": self.root,
                "flinksched.push.cluster": self.cluster, **self.extra}


def link_lib_dir(home: Path, lib_dir: Path, extra: list[Path]) -> Path:
    """A lib dir (FLINK_LIB_DIR) with Flink's own jars and `extra` ones, linked, not copied.
    Links already right are left alone: a running JobManager may be reading them."""
    lib_dir.mkdir(parents=True, exist_ok=True)
    wanted = {jar.name: jar.resolve() for jar in [*sorted((home / "lib").iterdir()), *extra]}
    for link in lib_dir.iterdir():
        if link.name not in wanted or not link.is_symlink() or (
                link.resolve() != wanted[link.name]):
            link.unlink()
    for name, target in wanted.items():
        if not (lib_dir / name).is_symlink():
            (lib_dir / name).symlink_to(target)
    return lib_dir


def write_flink_conf(home: Path, conf_dir: Path, state_dir: Path, ports: FlinkPorts,
                     durable: bool = True, push: PushTarget | None = None,
                     version: str = FLINK_VERSION, java_options: str = "",
                     state_root: str = "", extra: dict[str, str] | None = None) -> Path:
    """A conf dir for a local session cluster: fast heartbeats, retained checkpoints (under
    `state_root`, an object-storage URI, else on local disk), and, with `push`, the status
    listener. `durable=False` leaves out the checkpoint and savepoint directories, as Flink
    ships. A 1.x cluster gets its checkpoint keys under their 1.x names, as clusters
    configured before 2.0 have them. `java_options` go to every JVM of the cluster, after
    Flink's own (and to the clusters of jobs' own that use this configuration as their
    base); `extra` settings (an S3 endpoint and its credentials) come last."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    for shipped in (home / "conf").iterdir():
        if shipped.name != "config.yaml":
            shutil.copy(shipped, conf_dir / shipped.name)
    yaml = YAML(typ="safe")
    shipped_conf = yaml.load((home / "conf" / "config.yaml").read_text()) or {}
    java_opts = shipped_conf.get("env", {}).get("java", {}).get("opts", {}).get("all", "")
    tmp = state_dir / "flink-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    parsed = checked_version(version)
    checkpoint_keys = {
        key.configured_name(parsed): value
        for key, value in (
            (CHECKPOINT_DIR, f"{state_root.rstrip('/')}/checkpoints" if state_root
             else (state_dir / "checkpoints").resolve().as_uri()),
            (SAVEPOINT_DIR, f"{state_root.rstrip('/')}/savepoints" if state_root
             else (state_dir / "savepoints").resolve().as_uri()),
            (RETAINED_CHECKPOINTS, 3),
            (CHECKPOINT_RETENTION, "RETAIN_ON_CANCELLATION"),
        )
    }
    settings = {
        "env.java.opts.all": f"{java_opts} {java_options}".strip(),
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": ports.rpc,
        "jobmanager.bind-host": "localhost",
        "taskmanager.bind-host": "localhost",
        "taskmanager.host": "localhost",
        "rest.address": "localhost",
        "rest.bind-address": "localhost",
        "rest.port": ports.rest,
        "jobmanager.memory.process.size": "1024m",
        "taskmanager.memory.process.size": "2048m",
        "taskmanager.numberOfTaskSlots": 24,
        "parallelism.default": 1,
        **(checkpoint_keys if durable else {}),
        # With the defaults a TaskManager needs ~50 s to rejoin a restarted JobManager, and
        # one started before its JobManager is up waits 10 s before it tries again.
        "heartbeat.interval": 1000,
        "heartbeat.timeout": 6000,
        "cluster.registration.error-delay": 1000,
        "io.tmp.dirs": str(tmp),
        "web.tmpdir": str(tmp),
        "web.cancel.enable": True,
        **(extra or {}),
    }
    if push is not None:
        if not parsed.has_status_listener:
            raise DevStackError(f"Flink {version} cannot load the status listener: job status "
                                "listeners (JobStatusChangedListener) came with Flink 2")
        settings.update(push.settings())
    path = conf_dir / "config.yaml"
    with path.open("w") as out:
        YAML(typ="safe", pure=True).dump(settings, out)
    return path
