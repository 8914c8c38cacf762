"""Test-side handles on the real stack: control-plane processes, job configs, Flink queries."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from ruamel.yaml import YAML

from common.flink.jobids import flink_job_id, name_prefix
from common.flink.versions import parse_version
from common.processes import bindable, claim_port
from scheduler.devstack import flinkhome
from scheduler.devstack.seaweedfs import S3Server
from scheduler.devstack.stack import DevStack, own_cluster_env
from worker.targets.application.local import tear_down_all

REPO = Path(__file__).resolve().parents[1]
# The session cluster's status listener pushes to this root: a test whose control plane runs
# under it is pushed to, any other (a per-test root) sees a cluster without the listener.
PUSH_ROOT = "/push"
PUSH_HEARTBEAT = 1.0
PUSH_SETTINGS = (("flinksched.push.heartbeat-interval", f"{PUSH_HEARTBEAT:g}s"),
                 ("flinksched.push.queue-capacity", "16"),
                 ("flinksched.push.zookeeper.session-timeout", "6s"))

# The suite runs on a cluster of FLINKSCHED_FLINK_VERSION (2.3.0 unless set); the tests of the
# core behaviours run once more on a cluster of the other supported major version.
PRIMARY_VERSION = flinkhome.FLINK_VERSION
SECOND_VERSION = (flinkhome.LTS_VERSION if parse_version(PRIMARY_VERSION).major >= 2
                  else flinkhome.DEFAULT_VERSION)
FLINK_VERSIONS = (PRIMARY_VERSION, SECOND_VERSION)
# Where each version's jobs' jars are built (the primary's where the dev stack builds them).
BUILD_DIRS = {PRIMARY_VERSION: REPO / "build",
              SECOND_VERSION: REPO / "build" / f"flink-{SECOND_VERSION}"}
PRIMARY_PUSHES = parse_version(PRIMARY_VERSION).has_status_listener
# A test taking the `flink` fixture runs once on each version's cluster.
on_each_flink = pytest.mark.parametrize("flink", FLINK_VERSIONS, indirect=True)


def outside_ephemeral_ports(count: int) -> list[int]:
    """`count` consecutive free ports below the kernel's ephemeral range. A port a test picks
    and a stack binds later must be one no outgoing connection (ZooKeeper's, Flink's) can be
    given in between, as any port of that range can."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        first = random.randrange(10_000, low - count)
        ports = list(range(first, first + count))
        if all(bindable(port) for port in ports) and all(claim_port(port) for port in ports):
            return ports
    raise RuntimeError(f"no {count} free consecutive ports between 10000 and {low}")


class Proxy(Protocol):
    """A proxy a test can cut and heal (in this process, or shared by the run's processes)."""

    @property
    def port(self) -> int: ...
    def partition(self) -> None: ...
    def heal(self) -> None: ...


@dataclass
class Cluster:
    """A Flink session cluster and the ZooKeeper, started once per test run."""

    zk_hosts: str
    rest_url: str
    example_jar: Path
    state_dir: Path
    push_proxy: Proxy | None = None  # between the listener and ZooKeeper, when there is one
    flink_home: Path | None = None  # the distribution jobs' own clusters start from
    s3: S3Server | None = None  # the run's S3 server, which the cluster reaches

    def own_cluster_env(self, applications_dir: Path) -> dict[str, str]:
        """What a worker needs to start jobs' own clusters as the dev stack's workers do, and
        to reach the S3 server."""
        s3 = self.s3.client_env() if self.s3 else {}
        if self.flink_home is None:
            return s3
        return {**own_cluster_env(self.flink_home, self.state_dir, applications_dir), **s3}

    def get(self, path: str) -> Any:
        response = httpx.get(self.rest_url + path, timeout=10)
        return response.json() if response.status_code == 200 else None

    def job_state(self, job_id: str) -> str | None:
        found = self.get(f"/jobs/{job_id}")
        return found.get("state") if found else None

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{job_id}/checkpoints") or {}

    def completed_checkpoint_id(self, job_id: str) -> int:
        latest = (self.checkpoints(job_id).get("latest") or {}).get("completed") or {}
        return int(latest.get("id") or 0)

    def restored_from_newest(self, failed: str, restarted: str, timeout: float = 20) -> Any:
        """The restarted attempt's restored checkpoint, once Flink reports it to be the newest
        completed checkpoint of the failed attempt. Flink serves checkpoint statistics from a
        cache (up to 3 s old); the completed id only grows, so agreement cannot come early."""
        from tests.waiting import wait_until

        def agreed() -> Any:
            restored = (self.checkpoints(restarted).get("latest") or {}).get("restored")
            newest = (self.checkpoints(failed).get("latest") or {}).get("completed")
            if restored and newest and restored["id"] == newest["id"]:
                return restored
            return None

        return wait_until(agreed, timeout, f"{restarted} restored from the newest checkpoint "
                                           f"of {failed}")

    def fail_over(self, name: str, first: str, marker: Path, *, fail_within: float = 60,
                  run_within: float = 120) -> tuple[str, Any]:
        """Touch `marker` (the job fails on it), wait for attempt 1 to fail and attempt 2 to
        run, and check that attempt 2 restored the newest checkpoint of attempt 1 and is the
        only one running. Returns attempt 2's job id and that checkpoint."""
        from tests.waiting import wait_until

        second = flink_job_id(name, 2)
        marker.touch()
        wait_until(lambda: self.job_state(first) == "FAILED", fail_within, "attempt 1 to fail")
        wait_until(lambda: self.job_state(second) == "RUNNING", run_within,
                   "attempt 2 to be RUNNING")
        restored = self.restored_from_newest(first, second)
        newest = self.checkpoints(first)["latest"]["completed"]
        assert restored["external_path"].rstrip("/") == newest["external_path"].rstrip("/")
        assert self.running_ids(name) == [second]
        return second, newest

    def running_ids(self, name: str) -> list[str]:
        jobs = (self.get("/jobs") or {}).get("jobs", [])
        prefix = name_prefix(name)
        return [j["id"] for j in jobs if j["id"].startswith(prefix) and j["status"] == "RUNNING"]

    def submissions(self, name: str) -> list[str]:
        """Every job id of this flinksched job the cluster knows, whatever its state."""
        prefix = name_prefix(name)
        return sorted(j["id"] for j in (self.get("/jobs") or {}).get("jobs", [])
                      if j["id"].startswith(prefix))

    def cancel_all(self) -> None:
        """Cancel every job alive on the cluster (a cluster of the caller's own)."""
        for job in (self.get("/jobs") or {}).get("jobs", []):
            if job["status"] not in ("FAILED", "CANCELED", "FINISHED"):
                httpx.patch(f"{self.rest_url}/jobs/{job['id']}", params={"mode": "cancel"})

    def cancel(self, names: set[str]) -> None:
        """Cancel every attempt of these jobs still alive (other tests' jobs share the
        cluster: each test cancels its own)."""
        prefixes = tuple(name_prefix(name) for name in names)
        for job in (self.get("/jobs") or {}).get("jobs", []):
            if job["id"].startswith(prefixes) and job["status"] not in (
                    "FAILED", "CANCELED", "FINISHED"):
                httpx.patch(f"{self.rest_url}/jobs/{job['id']}", params={"mode": "cancel"})


@dataclass(frozen=True)
class FlinkUnderTest:
    """The cluster a test runs on, and the dev stack that started it."""

    version: str
    devstack: DevStack
    cluster: Cluster


@dataclass
class ControlPlane:
    """Masters and workers of one test, as real processes under their own ZooKeeper root."""

    cluster: Cluster
    workdir: Path
    root: str = field(default_factory=lambda: f"/t-{uuid.uuid4().hex[:10]}")
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    jobs: set[str] = field(default_factory=set)  # names of the jobs this plane ran

    @property
    def config_dir(self) -> Path:
        path = self.workdir / "configs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    session_timeout = 6.0

    def base_argv(self, zk: str | None = None,
                  session_timeout: float | None = None) -> list[str]:
        return [sys.executable, "-m", "scheduler", "--zk", zk or self.cluster.zk_hosts,
                "--root", self.root,
                "--session-timeout", str(session_timeout or self.session_timeout)]

    @property
    def applications_dir(self) -> Path:
        return self.workdir / "applications"

    def _spawn(self, name: str, argv: list[str],
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.cluster.own_cluster_env(self.applications_dir),
               **(env or {})}
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=REPO, env=env)
        self.processes[name] = process
        return process

    def start_master(self, name: str = "master-a", *extra: str,
                     config_dir: Path | None = None,
                     zk: str | None = None) -> subprocess.Popen[bytes]:
        return self._spawn(name, [*self.base_argv(zk), "master", "--id", name,
                                  "--config-dir", str(config_dir or self.config_dir),
                                  "--metrics-port", "0",
                                  "--worker-log-dir", str(self.workdir / "pool"), *extra])

    def start_worker(self, name: str = "worker-a", slots: int = 1, zk: str | None = None,
                     metrics_port: int = 0, nice: int = 0,
                     env: dict[str, str] | None = None,
                     session_timeout: float | None = None) -> subprocess.Popen[bytes]:
        """`nice` lowers the worker's CPU priority (benchmarks keep the stand-in cluster
        they share the machine with from being starved by thousands of worker threads);
        `env` overrides the worker's environment (its storage credentials, say)."""
        niced = ["nice", "-n", str(nice)] if nice else []
        return self._spawn(name, [*niced, *self.base_argv(zk, session_timeout), "worker",
                                  "--id", name,
                                  "--slots", str(slots), "--metrics-port", str(metrics_port)],
                           env)

    def signal(self, name: str, sig: int) -> None:
        self.processes[name].send_signal(sig)

    def stop_pool_workers(self) -> None:
        """Workers a master started itself (local runtime) are not our children: find them
        by their registration and the id prefix their master gives them."""
        from kazoo.client import KazooClient

        from common.errors import StoreAccessDenied
        from common.store.zookeeper import Store

        client = KazooClient(hosts=self.cluster.zk_hosts)
        client.start(timeout=10)
        try:
            try:
                workers = Store(client, self.root).workers()
            except StoreAccessDenied:  # a root under ACLs: this test started no pool workers
                workers = {}
            for info in workers.values():
                if "-w-" in info.id:
                    try:
                        os.kill(info.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        finally:
            client.stop()
            client.close()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def cli(self, *args: str) -> str:
        """What `flinksched ARGS` prints on this control plane's root (exit 0 asserted)."""
        from click.testing import CliRunner

        from scheduler.cli.main import cli

        result = CliRunner().invoke(cli, ["--zk", self.cluster.zk_hosts, "--root", self.root,
                                          *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def stop_all(self) -> None:
        try:
            self.stop_pool_workers()
        finally:  # ZooKeeper not answering must not leave our own children running
            self._stop_children()
            tear_down_all(self.applications_dir)

    def _stop_children(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

    def cancel_jobs(self) -> None:
        """Cancel what this plane's jobs left running on the shared cluster."""
        self.cluster.cancel(self.jobs)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *_: object) -> None:
        """Its processes stopped, and what its jobs left on the shared cluster cancelled."""
        self.stop_all()
        self.cancel_jobs()

    def remove_job(self, name: str, config_dir: Path | None = None) -> None:
        """Delete the job's YAML file, as a commit that removes it would."""
        ((config_dir or self.config_dir) / f"{name}.yaml").unlink(missing_ok=True)

    def write_job(self, name: str, *, args: list[str] | None = None,
                  config: dict[str, str] | None = None,
                  entry_class: str = "dev.flinksched.examples.StatefulCounter",
                  state: str = "running", parallelism: int = 1, config_dir: Path | None = None,
                  upgrade_mode: str = "savepoint", job: dict[str, Any] | None = None,
                  program: dict[str, Any] | None = None, **spec: Any) -> str:
        """A FlinkJob YAML file on the session cluster; returns the first attempt's job id.
        `program` (a Python or SQL program's fields) runs instead of the example jar, with
        `args` as they are. Files are replaced atomically, as git-sync and editors that
        rename do."""
        directory = config_dir or self.config_dir
        self.jobs.add(name)
        clusters = [{"apiVersion": "flinksched/v1", "kind": "FlinkCluster",
                     "metadata": {"name": "default"}, "spec": {"restUrl": self.cluster.rest_url}}]
        if spec.get("cluster") == OWN_CLUSTER:
            clusters.append(OWN_CLUSTER_DOCUMENT)
        if not (directory / "clusters.yaml").exists() or len(clusters) > 1:
            _dump_atomically(directory / "clusters.yaml", clusters)
        documents = [
            {"apiVersion": "flinksched/v1", "kind": "FlinkJob", "metadata": {"name": name},
             "spec": {
                 "cluster": spec.pop("cluster", "default"),
                 "job": {**(program if program is not None else {
                             "jarURI": self.cluster.example_jar.as_uri(),
                             "entryClass": entry_class, "args": ["--rate", "20", *(args or [])]}),
                         "parallelism": parallelism, "state": state,
                         "upgradeMode": upgrade_mode, **(job or {})},
                 "flinkConfiguration": {"execution.checkpointing.interval": "1s",
                                        "restart-strategy.type": "none", **(config or {})},
                 **spec,
             }},
        ]
        _dump_atomically(directory / f"{name}.yaml", documents)
        return flink_job_id(name, 1)


# The test clusters' JVMs compile with C1 alone: a cluster starts about 2 s sooner (a job's
# own cluster reaches RUNNING in 6.3 s instead of 8.6 s) and the two cores spend less time
# compiling Flink's code the example job never stresses. Benchmarks keep Flink's defaults.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"

OWN_CLUSTER = "own"
# How long a test waits for a job's own cluster to run its attempt: two JVMs started while the
# suite loads both cores (a JobManager took 47 s to its first log line, and its job 88 s to
# RUNNING, with the chaos test, the dev stack and a Python cluster starting beside it).
OWN_CLUSTER_START_SECONDS = 180
# Each job naming it gets a cluster of its own: a JobManager and a TaskManager, small.
OWN_CLUSTER_DOCUMENT = {
    "apiVersion": "flinksched/v1", "kind": "FlinkCluster", "metadata": {"name": OWN_CLUSTER},
    "spec": {"mode": "application", "jobManager": {"resource": {"memory": "768m"}},
             "taskManager": {"resource": {"memory": "1024m"}}}}


def _dump_atomically(path: Path, documents: list[dict[str, Any]]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w") as out:
        YAML(typ="safe", pure=True).dump_all(documents, out)
    partial.replace(path)
