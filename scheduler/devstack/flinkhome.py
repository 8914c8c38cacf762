"""A FLINK_HOME laid out from the PyPI wheels, and a Flink configuration for local work.

`apache-flink` carries bin/ and conf/, `apache-flink-libraries` carries lib/, opt/, plugins/.
Both are fetched with `pip download --no-deps` (installing apache-flink would pull in Beam,
pandas and pyarrow) into a cache directory shared by every checkout on the machine.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from common.errors import DevStackError
from scheduler.devstack.javabuild import LISTENER_FACTORY

FLINK_VERSION = os.environ.get("FLINKSCHED_FLINK_VERSION", "2.3.0")
WHEELS = ("apache-flink", "apache-flink-libraries")
LAYOUT = ("bin", "conf", "lib", "opt", "plugins", "log")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flinksched"
    return Path(os.environ.get("FLINKSCHED_CACHE", default))


def flink_home(version: str = FLINK_VERSION) -> Path:
    return cache_dir() / f"flink-{version}"


def dist_jar(home: Path, version: str = FLINK_VERSION) -> Path:
    return home / "lib" / f"flink-dist-{version}.jar"


def ensure_flink_home(version: str = FLINK_VERSION) -> Path:
    """The laid-out FLINK_HOME, downloading and unpacking the wheels on first use."""
    home = flink_home(version)
    if dist_jar(home, version).is_file():
        return home
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q", "-d", str(wheels),
        *(f"{name}=={version}" for name in WHEELS),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevStackError(
            f"could not download Flink {version} wheels from PyPI: {result.stderr.strip()[-500:]}"
        )
    staging = Path(tempfile.mkdtemp(prefix=f"flink-{version}-", dir=cache_dir()))
    try:
        for wheel in wheels.glob(f"apache_flink*-{version}-*.whl"):
            _unpack(wheel, staging)
        for part in ("bin", "conf", "lib"):
            if not (staging / part).is_dir():
                raise DevStackError(f"the Flink {version} wheels have no {part}/ directory")
        for script in (staging / "bin").iterdir():
            script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        if home.exists():
            shutil.rmtree(home)
        staging.rename(home)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return home


def _unpack(wheel: Path, target: Path) -> None:
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
                     durable: bool = True, push: PushTarget | None = None) -> Path:
    """A conf dir for a local session cluster: fast heartbeats, local retained checkpoints,
    and, with `push`, the status listener. `durable=False` leaves out the checkpoint and
    savepoint directories, as Flink ships."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    for shipped in (home / "conf").iterdir():
        if shipped.name != "config.yaml":
            shutil.copy(shipped, conf_dir / shipped.name)
    yaml = YAML(typ="safe")
    shipped_conf = yaml.load((home / "conf" / "config.yaml").read_text()) or {}
    java_opts = shipped_conf.get("env", {}).get("java", {}).get("opts", {}).get("all", "")
    tmp = state_dir / "flink-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    settings = {
        "env.java.opts.all": java_opts,
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
        "execution.checkpointing.dir": (state_dir / "checkpoints").resolve().as_uri(),
        "execution.checkpointing.savepoint-dir": (state_dir / "savepoints").resolve().as_uri(),
        "execution.checkpointing.num-retained": 3,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        # With the defaults a TaskManager needs ~50 s to rejoin a restarted JobManager.
        "heartbeat.interval": 1000,
        "heartbeat.timeout": 6000,
        "io.tmp.dirs": str(tmp),
        "web.tmpdir": str(tmp),
        "web.cancel.enable": True,
    }
    if not durable:
        for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir",
                    "execution.checkpointing.num-retained",
                    "execution.checkpointing.externalized-checkpoint-retention"):
            del settings[key]
    if push is not None:
        settings.update(push.settings())
    path = conf_dir / "config.yaml"
    with path.open("w") as out:
        YAML(typ="safe", pure=True).dump(settings, out)
    return path
