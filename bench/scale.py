"""Thousands of jobs on one machine: a real ZooKeeper, a real master and workers (`--slots
100`), and bench/flinksim standing in for the Flink cluster.

    python -m bench.scale --jobs 1000 5000 5000 5000 --window 60

A job count given more than once is run that many times, and the report gives the median and
the worst of each figure over those runs. The pool has the slack an installation would keep:
`--spare-workers` (2) workers beyond the slots the jobs need, 4% of 5,000 jobs' 50 workers.
A job counts as RUNNING as a user would count it: its status says so, its owner node exists
(a worker supervises it in a live session) and names the status's writer, and the simulated
Flink runs its attempt. Each run reports the ZooKeeper sessions that expired and how long
each worker took to be registered again (from the workers' logs).

Throughout each run a scraper reads the leading master's /metrics once a second with
Prometheus' default 10 s timeout, and the scrape times of the start (until every job is
RUNNING) and of the steady state are reported apart. Once every job is RUNNING, a steady-
state window measures: the master's task durations (from its own
`flinksched_master_task_seconds`), master and worker resident memory, ZooKeeper requests per
second and writes and bytes written per job (ZooKeeper's `mntr` counters for this run's
root), and Flink REST requests per job per second (the simulator's own count). Simulated
jobs checkpoint every 30 s, as production jobs commonly do.

Nothing here ends in a traceback: jobs that do not all run by `--deadline` are a figure
("4,990 of 5,000 RUNNING at 300 s", with their phases and a few of their reasons, the logs
kept), a scrape that times out counts as one of 10 s or more, and a run that fails is
reported as such, with everything it started stopped.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.stackutil import (
    cpu_seconds,
    exit_on_sigterm,
    flink_simulator,
    local_stack,
    memory_mb,
    write_results,
    zk_mntr,
    zk_store,
)
from common.errors import StoreError
from common.processes import free_port
from common.store.records import Phase
from common.store.zookeeper import Store
from scheduler.devstack.services import port_open, wait_for
from tests.stack import ControlPlane

SLOTS = 100
# Workers run at a lower CPU priority than the simulator, which stands in for a JobManager on
# another machine: fifty worker processes of a hundred threads each would otherwise starve it.
WORKER_NICE = 10
SCRAPE_TIMEOUT = 10.0  # Prometheus' default scrape_timeout
SCRAPE_EVERY = 1.0
JOB = """\
apiVersion: flinksched/v1
kind: FlinkJob
metadata: {name: %(name)s, labels: {team: bench}}
spec:
  job: {jarURI: %(jar)s, entryClass: com.example.Pipeline, parallelism: 2,
        args: ["--source", "topic-%(name)s"]}
  flinkConfiguration: {execution.checkpointing.interval: 30s}
"""


def write_configs(directory: Path, rest_url: str, jobs: int) -> None:
    jar = directory.parent / "app.jar"
    jar.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: the simulator runs anything
    (directory / "clusters.yaml").write_text(
        "apiVersion: flinksched/v1\nkind: FlinkCluster\nmetadata: {name: default}\n"
        f"spec: {{restUrl: \"{rest_url}\"}}\n")
    for index in range(jobs):
        name = f"job-{index:05d}"
        (directory / f"{name}.yaml").write_text(JOB % {"name": name, "jar": jar.as_uri()})


def _scrape(url: str, stage: Any, stop: Any, out: Any) -> None:
    """The scraper process: GET /metrics once a second, as Prometheus does (gzip, 10 s
    timeout), sending (stage, seconds or None) for each scrape."""
    with httpx.Client(timeout=SCRAPE_TIMEOUT, headers={"Accept-Encoding": "gzip"}) as client:
        while not stop.is_set():
            started = time.monotonic()
            took: float | None
            try:
                client.get(url).raise_for_status()
                took = time.monotonic() - started
            except httpx.HTTPError:
                took = None
            out.put((stage.value, took))
            stop.wait(max(0.0, SCRAPE_EVERY - (time.monotonic() - started)))


class Scraper:
    """Scrapes the leader's /metrics from a process of its own, as Prometheus would (the
    benchmark's own threads, reading thousands of statuses, must not delay the scrapes it
    times), and keeps each scrape's duration under the stage the run was in; a scrape that
    timed out or failed is kept as None."""

    STAGES = ("start", "steady")

    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stage = context.Value("i", 0)
        self._stop = context.Event()
        self._out: Any = context.Queue()
        self._process = context.Process(target=_scrape, name="scraper", daemon=True,
                                        args=(url, self._stage, self._stop, self._out))
        self._process.start()
        self.times: dict[str, list[float | None]] = {stage: [] for stage in self.STAGES}

    @property
    def stage(self) -> str:
        return self.STAGES[self._stage.value]

    @stage.setter
    def stage(self, stage: str) -> None:
        self._stage.value = self.STAGES.index(stage)

    def stop(self) -> None:
        """Stop the scraper, collecting every scrape it timed (drained before the join: a
        process exits only once what it queued has been read)."""
        self._stop.set()
        deadline = time.monotonic() + SCRAPE_TIMEOUT + 5
        while time.monotonic() < deadline:
            try:
                stage, took = self._out.get(timeout=0.5)
            except queue.Empty:
                if not self._process.is_alive():
                    break
                continue
            self.times[self.STAGES[stage]].append(took)
        self._process.join(1)
        if self._process.is_alive():
            self._process.kill()

    def summary(self, stage: str) -> dict[str, Any]:
        """Median, p99 and worst in seconds; a failed scrape counts as the timeout."""
        times = self.times[stage]
        if not times:
            return {"scrapes": 0}
        values = sorted(SCRAPE_TIMEOUT if t is None else t for t in times)
        return {"scrapes": len(times), "failed": sum(1 for t in times if t is None),
                "median_s": round(statistics.median(values), 3),
                "p99_s": round(values[min(len(values) - 1, int(0.99 * len(values)))], 3),
                "worst_s": round(values[-1], 3)}


def master_tasks(url: str) -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) of each master task so far; empty when /metrics failed."""
    try:
        return task_totals(httpx.get(url, timeout=30).text)
    except httpx.HTTPError:
        return {}


def task_totals(text: str) -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) of each master task so far, from a /metrics answer."""
    totals: dict[str, list[float]] = {}
    for kind, task, value in re.findall(
            r'^flinksched_master_task_seconds_(sum|count)\{task="(\w+)"\} (\S+)$', text, re.M):
        totals.setdefault(task, [0.0, 0.0])[0 if kind == "sum" else 1] = float(value)
    return {task: (pair[0], pair[1]) for task, pair in totals.items()}


class View:
    """Every job as a user would count it: status, owner and what Flink runs."""

    def __init__(self, statuses: dict[str, Any], owners: dict[str, str],
                 flink_running: set[str]) -> None:
        self.statuses = statuses
        self.owners = owners
        self.flink_running = flink_running

    def why_not(self, name: str) -> str | None:
        """None when the job runs as a user counts it, else what is missing."""
        status = self.statuses.get(name)
        if status is None:
            return "(no status)"
        if status.phase != Phase.RUNNING:
            return str(status.phase)
        if name not in self.owners:
            return "Running, but no owner"
        if self.owners[name] != status.worker:
            return "Running, written by a former owner"
        if status.flink_job_id not in self.flink_running:
            return "Running, but not in Flink"
        return None

    def running(self) -> int:
        return sum(1 for name in self.statuses if self.why_not(name) is None)


def sim_running(sim: str) -> set[str] | None:
    """The job ids the simulated cluster runs; None when it did not answer."""
    try:
        jobs = httpx.get(f"{sim}/jobs", timeout=60).json()["jobs"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return {job["id"] for job in jobs if job.get("status") == "RUNNING"}


def view(store: Store, sim: str) -> View | None:
    """Every job's status and owner, read 500 at a time (a loaded machine must not starve
    this client's heartbeats behind thousands of reads), and what Flink runs; None when
    ZooKeeper or the simulator did not answer."""
    try:
        names = sorted(store.job_names())
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for start in range(0, len(names), 500):
            found.update(store.statuses(names[start:start + 500]))
            owners.update(store.owners(names[start:start + 500]))
    except StoreError:
        return None
    flink = sim_running(sim)
    if flink is None:
        return None
    return View({name: found.get(name) for name in names}, owners, flink)


def running(store: Store, sim: str) -> int | None:
    found = view(store, sim)
    return None if found is None else found.running()


def not_running(found: View, examples: int = 10) -> dict[str, Any]:
    """The jobs that are not RUNNING: how many for each reason, and a few with theirs."""
    why = {name: found.why_not(name) for name in found.statuses}
    waiting = {name: found.statuses[name] for name, reason in why.items() if reason}
    return {
        "reasons": dict(Counter(reason for reason in why.values() if reason)),
        "examples": [{"job": name, "why": why[name],
                      "phase": "(no status)" if s is None else str(s.phase),
                      "worker": "" if s is None else s.worker,
                      "reason": "" if s is None else s.reason,
                      "last_failure": "" if s is None else s.last_failure[:200]}
                     for name, s in sorted(waiting.items())[:examples]],
    }


def sim_requests(sim: str) -> dict[str, int]:
    try:
        stats = httpx.get(f"{sim}/_sim/stats", timeout=60).json()
    except httpx.HTTPError:
        return {}
    return {path: n for path, n in stats["requests"].items() if not path.startswith("/_sim")}


def sample(control: ControlPlane, sim: str, metrics_url: str) -> dict[str, Any]:
    namespace = control.root.strip("/")
    mntr = zk_mntr(control.cluster.zk_hosts)
    requests = sim_requests(sim)
    return {
        "at": time.monotonic(),
        "zk_requests": int(mntr["zk_packets_received"]),
        "zk_writes": int(mntr.get(f"zk_cnt_{namespace}_write_per_namespace", 0)),
        "zk_bytes": int(mntr.get(f"zk_sum_{namespace}_write_per_namespace", 0)),
        "rest": sum(requests.values()),
        "rest_by_route": requests,
        "tasks": master_tasks(metrics_url),
        "cpu": {name: cpu_seconds(p.pid) for name, p in control.processes.items()},
    }


def ramp(store: Store, sim: str, jobs: int, started: float, deadline: float) -> float | None:
    """Wait for every job to be RUNNING, printing progress; seconds taken, or None when the
    deadline passed first (reported as such: the machine could not keep up)."""
    reported = started
    while time.monotonic() - started < deadline:
        up = running(store, sim) or 0
        if up == jobs:
            return time.monotonic() - started
        if time.monotonic() - reported >= 30:
            reported = time.monotonic()
            requests = sim_requests(sim)
            print(f"  {reported - started:4.0f}s: {up} of {jobs} RUNNING; simulator requests "
                  f"so far: {dict(sorted(requests.items(), key=lambda kv: -kv[1])[:4])}",
                  flush=True)
        time.sleep(5)  # progress is read from ZooKeeper; nothing here waits on it
    return None


def measure(jobs: int, window: float, deadline: float, spares: int) -> dict[str, Any]:
    workers = -(-jobs // SLOTS) + spares
    with local_stack(flink=False) as (cluster, control), flink_simulator() as sim, \
            zk_store(cluster.zk_hosts, control.root) as store:
        write_configs(control.config_dir, sim, jobs)
        master_port = free_port()
        started = time.monotonic()
        master = control.start_master("master-a", "--metrics-port", str(master_port),
                                      "--spare-workers", "0", "--worker-slots", str(SLOTS))
        if not wait_for(lambda: port_open(master_port), 60):
            raise RuntimeError("the master did not open its metrics port within 60 s")
        metrics_url = f"http://127.0.0.1:{master_port}/metrics"
        scraper = Scraper(metrics_url)  # from the master's first answer on
        try:
            for index in range(workers):
                control.start_worker(f"worker-{index}", slots=SLOTS, nice=WORKER_NICE)
            all_running = ramp(store, sim, jobs, started, deadline)
            found = view(store, sim)  # one read for how many run and which do not
            at = time.monotonic() - started
            up = found.running() if found is not None else 0
            print(f"{up} of {jobs} jobs RUNNING {at:.0f}s after the start; measuring "
                  f"{window:g}s", flush=True)
            waiting = None
            if all_running is None:
                waiting = (not_running(found) if found is not None
                           else {"unread": "ZooKeeper did not answer"})
                kept = Path(tempfile.mkdtemp(prefix="flinksched-scale-logs-"))
                shutil.copytree(control.workdir, kept, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("configs", "*.jar"))
                print(f"not RUNNING: {waiting}\nlogs kept in {kept}", flush=True)
            scraper.stage = "steady"
            time.sleep(10)  # let the first checkpoint statistics and restart counts settle
            before = sample(control, sim, metrics_url)
            time.sleep(window)  # the measurement window itself
            after = sample(control, sim, metrics_url)
        finally:
            scraper.stop()
        seconds = after["at"] - before["at"]
        tasks = {}
        for task, (total, count) in after["tasks"].items():
            was = before["tasks"].get(task, (0.0, 0.0))
            runs = count - was[1]
            tasks[task] = round((total - was[0]) / runs, 3) if runs else None
        worker_rss = [memory_mb(p.pid) for name, p in control.processes.items()
                      if name.startswith("worker-")]
        sessions = session_expiries({name: control.log(name) for name in control.processes
                                     if name.startswith("worker-")})
        cpu = {name: (after["cpu"][name] - before["cpu"][name]) / seconds
               for name in after["cpu"]}
        worker_cpu = sum(v for name, v in cpu.items() if name.startswith("worker-"))
        return {
            "jobs": jobs,
            "workers": workers,
            "spare_workers": spares,
            "slots": SLOTS,
            "session_expiries": sessions,
            "all_running_s": round(all_running, 1) if all_running is not None else None,
            "deadline_s": deadline,
            "running_when_measured": up,
            "counted_at_s": round(at, 1),
            "not_running": waiting,
            "window_s": round(seconds, 1),
            "scrape_start": scraper.summary("start"),
            "scrape_steady": scraper.summary("steady"),
            "master_task_mean_s": tasks,
            "master_cycle_s": (round(sum(tasks.get(t) or 0.0 for t in ("sync", "assign", "pool")),
                                     3) if tasks else None),
            "master_rss_mb": round(memory_mb(master.pid), 1),
            "master_rss_peak_mb": round(memory_mb(master.pid, "VmHWM"), 1),
            "master_cpu_cores": round(cpu["master-a"], 3),
            "workers_cpu_cores": round(worker_cpu, 3),
            "worker_cpu_ms_per_job_per_s": round(worker_cpu * 1000 / jobs, 3),
            "worker_rss_mb_median": round(statistics.median(worker_rss), 1),
            "worker_rss_mb_max": round(max(worker_rss), 1),
            "zk_requests_per_s": round((after["zk_requests"] - before["zk_requests"]) / seconds,
                                       1),
            "zk_writes_per_job_per_s": round(
                (after["zk_writes"] - before["zk_writes"]) / jobs / seconds, 4),
            "zk_bytes_written_per_job_per_min": round(
                (after["zk_bytes"] - before["zk_bytes"]) / jobs / (seconds / 60), 1),
            "flink_rest_requests_per_job_per_s": round(
                (after["rest"] - before["rest"]) / jobs / seconds, 3),
            "flink_rest_requests_per_s_by_route": {
                route: round((n - before["rest_by_route"].get(route, 0)) / seconds, 1)
                for route, n in after["rest_by_route"].items()
                if n > before["rest_by_route"].get(route, 0)},
        }


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _log_time(line: str) -> float | None:
    found = LOG_TIME.match(line)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def session_expiries(logs: dict[str, str]) -> dict[str, Any]:
    """Each worker's expired ZooKeeper sessions (kazoo's "Session has expired") and how long
    after each the worker was registered again; one it never was is counted apart."""
    back: list[float] = []
    never: list[str] = []
    for name, text in sorted(logs.items()):
        expired_at: float | None = None
        for line in text.splitlines():
            at = _log_time(line)
            if at is None:
                continue
            if "Session has expired" in line and expired_at is None:
                expired_at = at
            elif "registered again in a new session" in line and expired_at is not None:
                back.append(round(at - expired_at, 1))
                expired_at = None
        if expired_at is not None:
            never.append(name)
    return {"expired": len(back) + len(never), "came_back_s": sorted(back),
            "never_came_back": never}


# figures summarised over the runs of one size (for each, more is worse)
SUMMARISED = ("all_running_s", "scrape_start.p99_s", "scrape_steady.p99_s", "master_cycle_s",
              "master_task_mean_s.metrics", "master_rss_peak_mb", "master_rss_mb",
              "worker_rss_mb_max", "workers_cpu_cores", "master_cpu_cores",
              "zk_writes_per_job_per_s", "flink_rest_requests_per_job_per_s")


def _figure(run: dict[str, Any], path: str) -> Any:
    value: Any = run
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and worst of each figure over the runs of one size. A run in which not every
    job ran counts as the worst start (None); a failed run is counted, not summarised."""
    measured = [r for r in runs if "error" not in r]
    summary: dict[str, Any] = {"runs": len(runs), "failed_runs": len(runs) - len(measured),
                               "all_running_in_every_run": bool(measured) and len(measured) ==
                               len(runs) and all(r["all_running_s"] is not None
                                                 for r in measured)}
    for path in SUMMARISED:
        values = [_figure(r, path) for r in measured]
        known = [v for v in values if v is not None]
        if not known:
            continue
        summary[path] = {"median": round(statistics.median(known), 4),
                         "worst": None if len(known) < len(values) else round(max(known), 4)}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 5000, 5000, 5000],
                        help="Job counts to run, in order; a count given N times runs N times.")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--deadline", type=float, default=300.0,
                        help="Seconds to wait for every job to run before measuring anyway.")
    parser.add_argument("--spare-workers", type=int, default=2,
                        help="Workers beyond the slots the jobs need (the pool's slack).")
    args = parser.parse_args()
    exit_on_sigterm()
    runs = []
    for jobs in args.jobs:
        try:
            result = measure(jobs, args.window, args.deadline, args.spare_workers)
        except Exception as exc:  # a figure too: this run could not be measured
            result = {"jobs": jobs, "error": f"{type(exc).__name__}: {exc}"}
        print({k: v for k, v in result.items() if k != "flink_rest_requests_per_s_by_route"},
              flush=True)
        runs.append(result)
    sizes = sorted({r["jobs"] for r in runs})
    write_results("scale", {"runs": runs, "summary": {
        str(n): summarise([r for r in runs if r["jobs"] == n]) for n in sizes}})


if __name__ == "__main__":
    main()
