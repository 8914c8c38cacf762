"""Application clusters as local processes: each attempt's JobManager (`standalone-job.sh
start-foreground`, the job's jar, its deterministic job id, its restore point) and
TaskManagers (`taskmanager.sh start-foreground`), on free ports bound to localhost, from a
Flink distribution on this host.

Each attempt has a directory, `<root>/<job>/<flink job id>/`, holding `cluster.json` (its
REST port and start time, written before any process starts; then each process's pid and
start time), its logs and its temporary files. A process is its recorded pid only while
that pid has the recorded start time, so a recycled pid never stands in for a JobManager.
Every process of an attempt also carries its directory and role in its environment: a
worker killed between starting a process and recording it still finds and tears it down.
The processes run in sessions of their own: a worker that dies leaves its jobs' clusters
running, for the next owner to adopt.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from common.errors import ClusterLaunchFailed
from common.processes import environments, free_port, process_start
from common.spec.programs import JarProgram
from common.store.records import JobRecord
from worker.distributions import choose_distribution, distribution
from worker.programs import launchable
from worker.programs.jars import JarCache
from worker.targets.application.cluster import Running
from worker.targets.application.launch import flat_config, launch_of

logger = logging.getLogger(__name__)

RECORD = "cluster.json"
SCAN_TTL = 0.5  # one scan of the process table serves every job's supervisor this long
TERM_WAIT = 5.0  # the longest a teardown waits for its killed processes to be gone
KEPT_RUNS = 3  # directories (with their logs) kept per job, the newest
LAST_WORDS_BYTES = 16384
# A log line at WARN or ERROR, or an exception's message (`java.lang.OutOfMemoryError: ...`).
LAST_WORDS = re.compile(r" (WARN|ERROR) |^(Exception in thread|[\w.$]+(Exception|Error)\b)")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class RunRecord:
    """What `cluster.json` says of an attempt's cluster, checked field by field."""

    rest_port: int
    started: float  # seconds since the epoch
    # role -> (pid, the process's start time in clock ticks since boot): a pid alone could
    # be a stranger's after a reboot or a wrap-around; the pair is the process's identity.
    processes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self, job_id: str) -> str:
        return json.dumps({"jobId": job_id, "restPort": self.rest_port, "started": self.started,
                           "processes": {role: list(p) for role, p in self.processes.items()}})


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def read_record(run_dir: Path) -> RunRecord | None:
    """The attempt's record, or None when the file is missing or is not what this launcher
    writes (a port out of range, a start in the future, a process that is no pair of
    numbers, junk)."""
    try:
        found = json.loads((run_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("jobId") != run_dir.name:
        return None
    port, started, processes = found.get("restPort"), found.get("started"), found.get(
        "processes", {})
    if (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
            or not _number(started) or started > time.time() + 60
            or not isinstance(processes, dict)):
        return None
    pairs: dict[str, tuple[int, int]] = {}
    for role, pair in processes.items():
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                           for n in pair)):
            return None
        pairs[str(role)] = (pair[0], pair[1])
    return RunRecord(port, float(started), pairs)



RUN_VAR = "FLINKSCHED_RUN"  # in every process of an attempt's cluster: its directory
ROLE_VAR = "FLINKSCHED_ROLE"  # jobmanager, taskmanager-<n>


class ProcessTable:
    """The processes of attempts' clusters, by directory: one scan of the processes' environments,
    shared by every caller for SCAN_TTL. Each process of an attempt (the start scripts, the
    JVM they become) carries the attempt's directory and its role in its environment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._found: dict[str, dict[int, str]] = {}  # run dir -> pid -> role

    def invalidate(self) -> None:
        with self._lock:
            self._at = float("-inf")

    def naming(self, run_dir: Path) -> dict[int, str]:
        """pid -> role of every process of the attempt in `run_dir`."""
        with self._lock:
            if time.monotonic() - self._at > SCAN_TTL:
                self._found = self._scan()
                self._at = time.monotonic()
            return dict(self._found.get(str(run_dir), {}))

    @staticmethod
    def _scan() -> dict[str, dict[int, str]]:
        found: dict[str, dict[int, str]] = {}
        for pid, environment in environments(RUN_VAR):
            found.setdefault(environment[RUN_VAR], {})[pid] = environment.get(ROLE_VAR, "")
        return found


class LocalLauncher:
    startup_grace = 120.0  # two JVMs on a loaded host; their REST API answers in about 8 s

    def __init__(self, root: Path, homes: list[Path], jars: JarCache,
                 conf_dir: Path | None = None) -> None:
        self.root = root.resolve()
        self.distributions = [distribution(home) for home in homes]
        self.jars = jars
        self.conf_dir = conf_dir  # the base configuration (FLINK_CONF_DIR), else the home's
        self.table = ProcessTable()
        self._lock = threading.Lock()
        self._children: list[subprocess.Popen[bytes]] = []

    def _job_dir(self, job: str) -> Path:
        return self.root / job

    def clusters(self, job: str) -> list[Running]:
        """Each attempt's cluster whose record or processes remain. Its JobManager is alive
        when the recorded process runs, the same process (pid and start time); a record
        without processes (a worker killed while starting them) falls back to the processes
        that carry the attempt's directory."""
        try:
            runs = [d for d in self._job_dir(job).iterdir() if JOB_ID.match(d.name)]
        except OSError:
            return []
        found = []
        for run_dir in runs:
            recorded = read_record(run_dir)
            jobmanager = recorded.processes.get("jobmanager") if recorded else None
            if jobmanager is not None:
                alive = process_start(jobmanager[0]) == jobmanager[1]
            else:
                processes = self.table.naming(run_dir)
                if recorded is None and not processes:
                    continue  # a run torn down, kept for its logs
                alive = "jobmanager" in processes.values()
            port, started = (recorded.rest_port, recorded.started) if recorded else (0, 0.0)
            found.append(Running(run_dir.name, f"http://localhost:{port}" if port else "",
                                 alive, started))
        return found

    def base_config(self, record: JobRecord) -> dict[str, str]:
        spec = record.cluster_model
        try:
            home = choose_distribution(self.distributions, spec.flinkVersion).home
        except ClusterLaunchFailed:
            return dict(spec.flinkConfiguration)
        conf_dir = self.conf_dir or home / "conf"
        found: dict[str, str] = {}
        for name in ("flink-conf.yaml", "config.yaml"):  # 2.x reads config.yaml only
            try:
                found.update(flat_config(YAML(typ="safe").load((conf_dir / name).read_text())))
            except (OSError, YAMLError):
                continue
        return {**found, **spec.flinkConfiguration}

    def last_words(self, job: str, job_id: str) -> str:
        """The JobManager's last warning, error or exception message (not its stack trace),
        and where its log is; "" when it said none (a SIGKILL leaves no word)."""
        out = self._job_dir(job) / job_id / "log" / "jobmanager.out"
        try:
            with out.open("rb") as text:
                text.seek(max(0, out.stat().st_size - LAST_WORDS_BYTES))
                lines = text.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        said = [line.strip() for line in lines if LAST_WORDS.search(line)]
        return f"{said[-1][:300]} (see {out})" if said else ""

    def launch(self, record: JobRecord, job_id: str, restore_path: str) -> Running:
        spec = record.cluster_model
        dist = choose_distribution(self.distributions, spec.flinkVersion)
        job = record.model.job
        self.jars.check_program(job.program)
        program = launchable(job.program, tuple(job.args), lambda: dist,
                             lambda uri: self.jars.text(uri, "sqlFile"))
        uri = program.jar_uri  # local://: in the image, which here is this host
        jar = self.jars.verified_path(uri.replace("local://", "file://", 1)
                                      if uri.startswith("local://") else uri, program.jar_sha256,
                                      trusted=not isinstance(job.program, JarProgram))
        run_dir = self._job_dir(record.name) / job_id
        if run_dir.exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a start that never got going
        (run_dir / "log").mkdir(parents=True)
        (run_dir / "tmp").mkdir()
        rest, rpc = free_port(), free_port()
        local = {
            "rest.port": str(rest), "rest.address": "localhost", "rest.bind-address": "localhost",
            "jobmanager.rpc.port": str(rpc), "jobmanager.rpc.address": "localhost",
            "jobmanager.bind-host": "localhost", "taskmanager.bind-host": "localhost",
            "taskmanager.host": "localhost",
            "io.tmp.dirs": str(run_dir / "tmp"), "web.tmpdir": str(run_dir / "tmp"),
        }
        launch = launch_of(record, job_id, restore_path, str(jar.resolve()), local, program)
        run = RunRecord(rest, time.time())
        # Before any process: a worker killed while starting them leaves their port known.
        _write(run_dir / RECORD, run.to_json(job_id))
        env = {**os.environ, "FLINK_LOG_DIR": str(run_dir / "log"), "FLINK_PID_DIR": str(run_dir),
               RUN_VAR: str(run_dir)}
        if self.conf_dir is not None:
            env["FLINK_CONF_DIR"] = str(self.conf_dir)
        env.pop("FLINK_HOME", None)  # the scripts find their own home
        bin_dir = dist.home / "bin"
        # The start scripts exec the JVM: each pid stays its role's process to the end.
        roles = {"jobmanager": [str(bin_dir / "standalone-job.sh"), "start-foreground",
                                *launch.jobmanager_args()]}
        for index in range(launch.taskmanagers):
            roles[f"taskmanager-{index}"] = [str(bin_dir / "taskmanager.sh"), "start-foreground",
                                             *launch.taskmanager_args()]
        for role, argv in roles.items():
            pid = self._spawn(run_dir, role, argv, {**env, ROLE_VAR: role})
            start = process_start(pid)
            if start is not None:
                run.processes[role] = (pid, start)
        _write(run_dir / RECORD, run.to_json(job_id))
        self.table.invalidate()
        self._prune(record.name, keep=job_id)
        return Running(job_id, f"http://localhost:{rest}", True, run.started)

    def _spawn(self, run_dir: Path, role: str, argv: list[str], env: dict[str, str]) -> int:
        with (run_dir / "log" / f"{role}.out").open("ab") as out:
            try:
                process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env, cwd=run_dir,
                                           start_new_session=True)  # outlives the worker
            except OSError as exc:
                raise ClusterLaunchFailed(f"cannot start the {role}: {exc}") from exc
        with self._lock:  # reaped when they exit, so a dead one is never a zombie for long
            self._children = [c for c in self._children if c.poll() is None] + [process]
        return process.pid

    def tear_down(self, job: str, job_id: str) -> None:
        if not JOB_ID.match(job_id):
            return
        pids = _kill_run(self.table, self._job_dir(job) / job_id)
        left = _await_gone(pids, self._reap)
        if left:
            logger.warning("job %s: processes %s of %s outlived SIGKILL", job, sorted(left),
                           job_id)

    def _reap(self) -> None:
        with self._lock:
            self._children = [c for c in self._children if c.poll() is None]

    def _prune(self, job: str, keep: str) -> None:
        """Keep the newest KEPT_RUNS directories (their logs) of runs torn down."""
        try:
            runs = sorted((d for d in self._job_dir(job).iterdir()
                           if JOB_ID.match(d.name) and d.name != keep
                           and not (d / RECORD).exists()),
                          key=lambda d: d.stat().st_mtime, reverse=True)
        except OSError:
            return
        for old in runs[KEPT_RUNS - 1:]:
            if not self.table.naming(old):
                shutil.rmtree(old, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _write(path: Path, text: str) -> None:
    """Replaced whole: a reader never sees half a record."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def tear_down_all(root: Path) -> list[str]:
    """Tear down every cluster under `root` (`dev down`, a test's end); the attempts'
    job ids that had processes."""
    table = ProcessTable()
    stopped, pids = [], set()
    for job_dir in (d for d in _entries(root.resolve()) if d.is_dir()):
        for run_dir in (d for d in _entries(job_dir) if JOB_ID.match(d.name)):
            killed = _kill_run(table, run_dir)
            if killed:
                stopped.append(run_dir.name)
                pids |= killed
    _await_gone(pids, lambda: None)
    return stopped


def _kill_run(table: ProcessTable, run_dir: Path) -> set[int]:
    """Forget the attempt's record and SIGKILL each of its processes (its state is on disk
    already): the recorded ones that are still the same processes, and any other that
    carries its directory (one started after the record was last written)."""
    recorded = read_record(run_dir)
    (run_dir / RECORD).unlink(missing_ok=True)
    table.invalidate()
    pids = set(table.naming(run_dir)) | {
        pid for pid, start in (recorded.processes.values() if recorded else ())
        if process_start(pid) == start}
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    table.invalidate()
    return pids


def _await_gone(pids: set[int], reap: Callable[[], None]) -> set[int]:
    """The processes still there after TERM_WAIT (none, unless the kernel is stuck)."""
    deadline = time.monotonic() + TERM_WAIT
    while pids and time.monotonic() < deadline:
        reap()  # our own children are zombies until reaped
        pids = {pid for pid in pids if process_start(pid) is not None}
        if pids:
            time.sleep(0.02)
    return pids


def own_clusters(root: Path) -> list[tuple[str, str, int]]:
    """(job, attempt's job id, JobManager pid) of every cluster under `root` that runs."""
    table = ProcessTable()
    found = []
    for job_dir in sorted(d for d in _entries(root.resolve()) if d.is_dir()):
        for run_dir in sorted(d for d in _entries(job_dir) if JOB_ID.match(d.name)):
            recorded = read_record(run_dir)
            pair = recorded.processes.get("jobmanager") if recorded else None
            if pair is not None and process_start(pair[0]) == pair[1]:
                found.append((job_dir.name, run_dir.name, pair[0]))
                continue
            pids = [pid for pid, role in table.naming(run_dir).items() if role == "jobmanager"]
            if pids:
                found.append((job_dir.name, run_dir.name, min(pids)))
    return found


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []
