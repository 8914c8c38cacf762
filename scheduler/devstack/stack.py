"""The local stack behind `flinksched dev up|down|status`: ZooKeeper, a Flink session cluster,
one master and its workers, every process under one state directory.

The test fixtures start ZooKeeper and Flink through the same functions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from common.errors import DevStackError
from common.processes import holder
from scheduler.devstack import flinkhome, prometheus, zookeeper
from scheduler.devstack.drivers import place_sql_driver
from scheduler.devstack.javabuild import EXAMPLE_JOB, STATUS_LISTENER, build_jar
from scheduler.devstack.plugins import link_plugins_dir, s3_plugin_jars
from scheduler.devstack.pyflink import ensure_pyflink
from scheduler.devstack.seaweedfs import S3Server, bucket_answers
from scheduler.devstack.services import (
    Service,
    exited,
    last_log_line,
    port_open,
    running_pid,
    start,
    stop,
    wait_for,
)
from worker.targets.application.local import own_clusters, tear_down_all

Progress = Callable[[str], None]
REPO = Path(__file__).resolve().parents[2]


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    config_dir: Path = REPO / "configs"
    build_dir: Path = REPO / "build"
    zk_port: int = 2181
    rest_port: int = 8081
    rpc_port: int = 6123
    master_metrics_port: int = 9250
    worker_metrics_port: int = 9251
    workers: int = 2
    # Jobs each worker supervises: the two workers run every job a demo's configs/ holds (a
    # job is a thread in a worker, and the session cluster's 24 task slots bind first).
    worker_slots: int = 32
    prometheus: bool = False  # also a Prometheus scraping the control plane, with the alerts
    prometheus_port: int = 9090
    # The Flink cluster pushes its jobs' status changes to this root (the master's and the
    # workers' --root); None: a cluster without the listener, watched by polling alone.
    push_root: str | None = "/flinksched"
    push_zk: str = ""  # the ZooKeeper the listener reaches ("": zk_hosts)
    push_settings: tuple[tuple[str, str], ...] = ()  # more flinksched.push.* settings
    cluster_name: str = "default"  # the FlinkCluster of configs/clusters.yaml
    flink_version: str = flinkhome.FLINK_VERSION  # FLINKSCHED_FLINK_VERSION, else 2.3.0
    java_options: str = ""  # more options for every Flink JVM (the tests': a quicker start)
    # An S3 server (SeaweedFS) on this port, which every Flink cluster and flinksched process
    # of the stack can use; 0: none. With `state_on_s3` the session cluster keeps its
    # checkpoints and savepoints there (the demo's way), else on local disk (jobs may still
    # name an S3 directory of their own).
    s3_port: int = 0
    state_on_s3: bool = False
    flink_s3_port: int = 0  # the cluster reaches the S3 server through this port (a proxy)

    @property
    def pushes(self) -> bool:
        """Whether the cluster loads the status listener: asked for, and a Flink 2 cluster
        (Flink 1.x has no job status listeners; its jobs are watched by polling)."""
        return self.push_root is not None and flinkhome.checked_version(
            self.flink_version).has_status_listener

    @property
    def zk_hosts(self) -> str:
        return f"127.0.0.1:{self.zk_port}"

    @property
    def rest_url(self) -> str:
        return f"http://localhost:{self.rest_port}"

    def s3(self) -> S3Server | None:
        return S3Server(self.s3_port, self.state_dir.resolve()) if self.s3_port else None


def own_cluster_env(flink_home: Path, state_dir: Path, applications_dir: Path) -> dict[str, str]:
    """What a worker starts jobs' own clusters with: a stack's Flink, with its session
    cluster's configuration (its checkpoint directories), lib and plugins dirs as their
    base."""
    return {"FLINKSCHED_FLINK_HOME": str(flink_home),
            "FLINK_CONF_DIR": str(state_dir / "flink-conf"),
            "FLINK_LIB_DIR": str(state_dir / "flink-lib"),
            "FLINK_PLUGINS_DIR": str(state_dir / "flink-plugins"),
            "FLINKSCHED_APPLICATIONS_DIR": str(applications_dir)}


def check_java() -> None:
    """Flink needs Java 17 or newer; say exactly what to install when it is missing."""
    hint = "install Java 17 or newer, e.g. `apt-get install openjdk-17-jdk-headless`"
    try:
        result = subprocess.run(["java", "-version"], capture_output=True, text=True)
    except FileNotFoundError:
        raise DevStackError(f"Java is not installed and Flink needs it: {hint}") from None
    match = re.search(r'version "(\d+)', result.stderr + result.stdout)
    if not match or int(match.group(1)) < 17:
        found = match.group(1) if match else "an unknown version"
        raise DevStackError(f"Flink needs Java 17 or newer, found Java {found}: {hint}")


# The session cluster's TaskManager, beyond the configuration clusters of jobs' own start
# from: each Python or SQL attempt loads flink-python's or the planner's classes into a class
# loader of its own, and the metaspace keeps them (the suite's shared TaskManager: 64 MB
# before its first Python job, 250 MB fifteen minutes later). Flink's 256 MB ran out within
# the suite, and a TaskManager out of metaspace shuts down with every job on it.
SESSION_TASKMANAGER = ["-D", "taskmanager.memory.process.size=3072m",
                       "-D", "taskmanager.memory.jvm-metaspace.size=1024m"]


class DevStack:
    def __init__(self, config: StackConfig, progress: Progress = _quiet) -> None:
        self.config = config
        self.progress = progress
        self.state_dir = config.state_dir.resolve()
        self.flink_home = flinkhome.flink_home(config.flink_version)

    # -- services ------------------------------------------------------------------------
    def _service(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Service:
        return Service(name, argv, env or {}, self.state_dir)

    def zookeeper_service(self) -> Service:
        script = zookeeper.find_server_script() or zookeeper.DEBIAN_HOME / "bin" / "zkServer.sh"
        cfg = self.state_dir / "zoo.cfg"
        return self._service("zookeeper", [str(script), "start-foreground", str(cfg)],
                             {"ZOO_LOG_DIR": str(self.state_dir / "logs")})

    def flink_service(self, role: str) -> Service:
        env = {"FLINK_CONF_DIR": str(self.state_dir / "flink-conf"),
               "FLINK_LOG_DIR": str(self.state_dir / "logs"),
               # Flink's lib/ plus the status listener, its plugins plus the S3 filesystems,
               # as a production image would have them.
               "FLINK_LIB_DIR": str(self.state_dir / "flink-lib"),
               "FLINK_PLUGINS_DIR": str(self.state_dir / "flink-plugins")}
        argv = [str(self.flink_home / "bin" / f"{role}.sh"), "start-foreground"]
        if role == "taskmanager":
            # kept running as a production host keeps it (see scheduler/devstack/respawn.py)
            argv = [sys.executable, "-m", "scheduler.devstack.respawn", "--name", role, "--",
                    *argv, *SESSION_TASKMANAGER]
        return self._service(role, argv, env)

    def control_services(self) -> list[Service]:
        base = [sys.executable, "-m", "scheduler", "--zk", self.config.zk_hosts]
        services = [
            self._service("master", [*base, "master", "--id", "dev-master",
                                     "--config-dir", str(self.config.config_dir),
                                     "--worker-slots", str(self.config.worker_slots),
                                     "--metrics-port", str(self.config.master_metrics_port)])
        ]
        for index in range(self.config.workers):
            services.append(self._service(f"worker-{index}", [
                *base, "worker", "--id", f"dev-worker-{index}",
                "--slots", str(self.config.worker_slots),
                "--metrics-port", str(self.config.worker_metrics_port + index)],
                self.own_cluster_env()))
        return services

    @property
    def applications_dir(self) -> Path:
        return self.state_dir / "applications"

    def own_cluster_env(self) -> dict[str, str]:
        """What the stack's workers run with: how to start jobs' own clusters, and how to
        reach the stack's S3 server."""
        s3 = self.config.s3()
        return {**own_cluster_env(self.flink_home, self.state_dir, self.applications_dir),
                **(s3.client_env() if s3 else {})}

    def prometheus_service(self) -> Service:
        binary = Path(shutil.which("prometheus") or "/usr/bin/prometheus")
        config = self.state_dir / "prometheus.yml"
        return self._service("prometheus", prometheus.server_argv(
            binary, config, self.state_dir, self.config.prometheus_port))

    def s3_service(self) -> Service:
        """The S3 server, as found and stopped by its pid file (`start_s3` starts it)."""
        return Service("seaweedfs", [], {}, self.state_dir)

    def all_services(self) -> list[Service]:
        return [self.zookeeper_service(), self.s3_service(), self.flink_service("jobmanager"),
                self.flink_service("taskmanager"), *self.control_services(),
                self.prometheus_service()]

    # -- steps ---------------------------------------------------------------------------
    def prepare(self) -> Path:
        """Everything that needs no running process: Java, Flink with its S3 plugins and a
        PyFlink of its version, ZooKeeper, the example jar."""
        self.progress("checking Java")
        check_java()
        version = self.config.flink_version
        flinkhome.checked_version(version)
        self.progress(f"fetching Flink {version} from PyPI (cached)")
        self.flink_home = flinkhome.ensure_flink_home(version)
        self.progress(f"fetching Flink {version}'s S3 plugins from Maven Central (cached)")
        s3_plugin_jars(version)
        self.progress(f"a Python with PyFlink {version} for Python jobs (cached)")
        ensure_pyflink(version)
        self.progress("finding ZooKeeper")
        zookeeper.ensure_server_script()
        if self.config.prometheus:
            self.progress("finding Prometheus")
            prometheus.ensure_prometheus()
        self.progress("putting the SQL driver in place")
        place_sql_driver(self.flink_home, version, REPO, self.config.build_dir)
        dist = flinkhome.dist_jar(self.flink_home, version)
        if self.config.pushes:
            self.progress("compiling the example job and the status listener")
            build_jar(STATUS_LISTENER, REPO, dist, self.config.build_dir)
        else:
            self.progress("compiling the example job")
        return build_jar(EXAMPLE_JOB, REPO, dist, self.config.build_dir)

    @staticmethod
    def build_listener(out_dir: Path) -> Path:
        """The status listener's jar, compiled against the Flink the dev stack fetches (a
        Flink 2 release: Flink 1.x has no job status listeners)."""
        version = flinkhome.FLINK_VERSION
        if not flinkhome.checked_version(version).has_status_listener:
            raise DevStackError(f"the status listener needs Flink 2 and FLINKSCHED_FLINK_VERSION "
                                f"is {version}: Flink 1.x has no job status listeners")
        check_java()
        home = flinkhome.ensure_flink_home(version)
        return build_jar(STATUS_LISTENER, REPO, flinkhome.dist_jar(home, version), out_dir)

    def start_zookeeper(self) -> None:
        self.progress(f"starting ZooKeeper on {self.config.zk_hosts}")
        zookeeper.write_zoo_cfg(self.state_dir, self.config.zk_port)
        start(self.zookeeper_service())
        if not wait_for(lambda: port_open(self.config.zk_port), 60):
            raise DevStackError(f"ZooKeeper did not open port {self.config.zk_port}; see "
                                f"{self.zookeeper_service().log_file}")

    def start_flink(self) -> None:
        version = self.config.flink_version
        self.progress(f"starting the Flink {version} session cluster at {self.config.rest_url}")
        ports = flinkhome.FlinkPorts(rest=self.config.rest_port, rpc=self.config.rpc_port)
        push = None
        if self.config.pushes:
            assert self.config.push_root is not None
            push = flinkhome.PushTarget(
                self.config.push_zk or self.config.zk_hosts, self.config.push_root,
                self.config.cluster_name, dict(self.config.push_settings))
        elif self.config.push_root is not None:
            self.progress(f"Flink {version} has no job status listeners: flinksched watches "
                          "its jobs by polling")
        self.refuse_version_switch()
        (self.state_dir / "flink-version").write_text(version + "\n")
        s3 = self.config.s3()
        python = str(ensure_pyflink(version))  # made by `prepare`: found at once
        flinkhome.write_flink_conf(
            self.flink_home, self.state_dir / "flink-conf", self.state_dir, ports, push=push,
            version=version, java_options=self.config.java_options,
            state_root=s3.uri(f"{self.config.cluster_name}") if s3 and self.config.state_on_s3
            else "", extra={**(self._s3_settings(s3) or {}),
                            # the driver's (JobManager) and the Python functions' (TaskManagers)
                            "python.client.executable": python, "python.executable": python})
        flinkhome.link_lib_dir(self.flink_home, self.state_dir / "flink-lib",
                               [] if push is None else
                               [self.config.build_dir / STATUS_LISTENER.name])
        link_plugins_dir(self.flink_home, self.state_dir / "flink-plugins", version)
        self.start_jobmanager()
        start(self.flink_service("taskmanager"))
        self.progress("waiting for a TaskManager to register")
        if not wait_for(lambda: self._taskmanagers() > 0, 120, interval=0.25):
            raise DevStackError("no TaskManager registered within 120 s; see "
                                f"{self.flink_service('taskmanager').log_file}")

    def refuse_version_switch(self) -> None:
        """A cluster of another Flink version still running from an earlier `dev up` is an
        error, before anything is built or started: never a silent mix of the two."""
        marker = self.state_dir / "flink-version"
        recorded = marker.read_text().strip() if marker.is_file() else ""
        running = [role for role in ("jobmanager", "taskmanager")
                   if running_pid(self.flink_service(role)) is not None]
        version = self.config.flink_version
        if running and recorded and recorded != version:
            raise DevStackError(f"this stack's Flink {recorded} cluster is running and Flink "
                                f"{version} was asked for: `flinksched dev down` first")

    def _s3_settings(self, s3: S3Server | None) -> dict[str, str] | None:
        if s3 is None:
            return None
        settings = s3.flink_settings()
        if self.config.flink_s3_port:
            settings["s3.endpoint"] = f"http://127.0.0.1:{self.config.flink_s3_port}"
        return settings

    def start_s3(self) -> None:
        """The S3 server, with its bucket, once it answers for it."""
        s3 = self.config.s3()
        if s3 is None:
            return
        self.progress(f"starting the S3 server (SeaweedFS) on {s3.endpoint}")
        if running_pid(self.s3_service()) is None:
            start(s3.service())
        if not wait_for(lambda: bucket_answers(s3), 90, interval=0.25):
            raise DevStackError(f"the S3 server did not serve bucket {s3.bucket} within 90 s; "
                                f"see {self.s3_service().log_file}")

    def start_jobmanager(self) -> None:
        start(self.flink_service("jobmanager"))
        if not wait_for(lambda: self._taskmanagers() >= 0, 120, interval=0.25):
            raise DevStackError("the Flink REST API did not answer within 120 s; see "
                                f"{self.flink_service('jobmanager').log_file}")

    def _taskmanagers(self) -> int:
        try:
            answer = httpx.get(f"{self.config.rest_url}/overview", timeout=2)
            return int(answer.json()["taskmanagers"]) if answer.status_code == 200 else -1
        except (httpx.HTTPError, ValueError, KeyError):
            return -1

    def start_control(self) -> None:
        self.progress("starting the master and workers")
        for service in self.control_services():
            start(service)

    def exited_control(self) -> list[str]:
        """A line for each master or worker `up` started that has exited since, with the last
        thing it logged (a port taken meanwhile, a bad flag): the jobs it would run never
        will, so waiting for them is pointless."""
        return [f"{service.name} exited: {last_log_line(service) or 'nothing logged'} (see "
                f"{service.log_file})" for service in self.control_services() if exited(service)]

    def start_prometheus(self) -> None:
        self.progress(f"starting Prometheus on http://127.0.0.1:{self.config.prometheus_port}")
        workers = [f"127.0.0.1:{self.config.worker_metrics_port + i}"
                   for i in range(self.config.workers)]
        prometheus.write_config(self.state_dir, [f"127.0.0.1:{self.config.master_metrics_port}"],
                                workers)
        start(self.prometheus_service())
        if not wait_for(lambda: port_open(self.config.prometheus_port), 60):
            raise DevStackError(f"Prometheus did not open port {self.config.prometheus_port}; "
                                f"see {self.prometheus_service().log_file}")

    def ports(self) -> list[tuple[Service, int, str]]:
        """Each service's fixed ports, with what they are for."""
        found = [(self.zookeeper_service(), self.config.zk_port, "ZooKeeper"),
                 (self.flink_service("jobmanager"), self.config.rest_port, "Flink REST"),
                 (self.flink_service("jobmanager"), self.config.rpc_port, "Flink RPC")]
        if self.config.s3_port:
            found.append((self.s3_service(), self.config.s3_port, "S3 (SeaweedFS)"))
        control = self.control_services()
        found.append((control[0], self.config.master_metrics_port, "portal and master metrics"))
        for index, service in enumerate(control[1:]):
            found.append((service, self.config.worker_metrics_port + index, "worker metrics"))
        if self.config.prometheus:
            found.append((self.prometheus_service(), self.config.prometheus_port, "Prometheus"))
        return found

    def refuse_strangers(self) -> None:
        """A port this stack needs, held by a process it did not start, is an error naming
        both: never use (or fail to start beside) someone else's server."""
        problems = []
        for service, port, what in self.ports():
            if running_pid(service) is not None:
                continue  # ours, from an earlier `dev up`
            held_by = holder(port)
            if held_by is not None:
                problems.append(f"port {port} ({what}) is held by {held_by}, which this stack "
                                "did not start")
        if problems:
            raise DevStackError("; ".join(problems) + ". Stop it, or give this stack other "
                                "ports (`flinksched dev up --help`)")

    def up(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.refuse_strangers()
        self.refuse_version_switch()
        self.prepare()
        self.start_zookeeper()
        self.start_s3()
        self.start_flink()
        self.start_control()
        if self.config.prometheus:
            self.start_prometheus()

    def down(self) -> list[str]:
        """Stop exactly what `up` started: the control plane first, then the jobs' own
        clusters its workers started, then Flink and ZooKeeper; names of what was stopped."""
        stopped = self._stop([self.prometheus_service(), *reversed(self.control_services())])
        stopped += [f"own cluster {job_id}" for job_id in tear_down_all(self.applications_dir)]
        return stopped + self._stop([self.flink_service("taskmanager"),
                                     self.flink_service("jobmanager"), self.s3_service(),
                                     self.zookeeper_service()])

    def _stop(self, services: list[Service]) -> list[str]:
        stopped = []
        for service in services:
            self.progress(f"stopping {service.name}")
            if stop(service):
                stopped.append(service.name)
        return stopped

    def status(self) -> dict[str, int | None]:
        """Each service's pid (None: stopped), then each job's own cluster's JobManager."""
        found = {service.name: running_pid(service) for service in self.all_services()}
        for job, job_id, pid in own_clusters(self.applications_dir):
            found[f"{job} {job_id[-8:]}"] = pid
        return found
