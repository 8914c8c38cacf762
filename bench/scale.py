"""Thousands of jobs on one machine: a real ZooKeeper, a real master and workers (`--slots
100`), and bench/flinksim standing in for the Flink cluster.

    python -m bench.scale --jobs 1000 5000 --window 60

Once every job is RUNNING, a steady-state window measures: the master's task durations
(from its own `flinksched_master_task_seconds`), master and worker resident memory,
ZooKeeper requests per second and writes and bytes written per job (ZooKeeper's `mntr`
counters for this run's root), and Flink REST requests per job per second (the simulator's
own count). Simulated jobs checkpoint every 30 s, as production jobs commonly do.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from kazoo.exceptions import KazooException

from bench.stackutil import (
    cpu_seconds,
    exit_on_sigterm,
    flink_simulator,
    local_stack,
    write_results,
    zk_mntr,
    zk_store,
)
from common.records import Phase
from common.store import Store
from scheduler.devstack.services import free_port
from tests.stack import ControlPlane

SLOTS = 100
# Workers run at a lower CPU priority than the simulator, which stands in for a JobManager on
# another machine: fifty worker processes of a hundred threads each would otherwise starve it.
WORKER_NICE = 10
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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def task_totals(metrics_url: str) -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) of each master task so far."""
    text = httpx.get(metrics_url, timeout=10).text
    totals: dict[str, list[float]] = {}
    for kind, task, value in re.findall(
            r'^flinksched_master_task_seconds_(sum|count)\{task="(\w+)"\} (\S+)$', text, re.M):
        totals.setdefault(task, [0.0, 0.0])[0 if kind == "sum" else 1] = float(value)
    return {task: (pair[0], pair[1]) for task, pair in totals.items()}


def running(store: Store) -> int | None:
    """Jobs whose status says Running, read 500 at a time (a loaded machine must not starve
    this client's heartbeats behind thousands of reads); None when ZooKeeper did not answer."""
    try:
        names = sorted(store.job_names())
        return sum(1 for start in range(0, len(names), 500)
                   for s in store.statuses(names[start:start + 500]).values()
                   if s.phase == Phase.RUNNING)
    except KazooException:
        return None


def sample(control: ControlPlane, sim: str, metrics_url: str) -> dict[str, Any]:
    stats = httpx.get(f"{sim}/_sim/stats", timeout=60).json()
    namespace = control.root.strip("/")
    mntr = zk_mntr(control.cluster.zk_hosts)
    return {
        "at": time.monotonic(),
        "zk_requests": int(mntr["zk_packets_received"]),
        "zk_writes": int(mntr.get(f"zk_cnt_{namespace}_write_per_namespace", 0)),
        "zk_bytes": int(mntr.get(f"zk_sum_{namespace}_write_per_namespace", 0)),
        "rest": sum(n for path, n in stats["requests"].items() if not path.startswith("/_sim")),
        "rest_by_route": {path: n for path, n in stats["requests"].items()
                          if not path.startswith("/_sim")},
        "tasks": task_totals(metrics_url),
        "cpu": {name: cpu_seconds(p.pid) for name, p in control.processes.items()},
    }


def ramp(store: Store, sim: str, jobs: int, started: float, deadline: float) -> float | None:
    """Wait for every job to be RUNNING, printing progress; seconds taken, or None when the
    deadline passed first (reported as such: the machine could not keep up)."""
    reported = started
    while time.monotonic() - started < deadline:
        up = running(store) or 0
        if up == jobs:
            return time.monotonic() - started
        if time.monotonic() - reported >= 30:
            reported = time.monotonic()
            requests = httpx.get(f"{sim}/_sim/stats", timeout=60).json()["requests"]
            print(f"  {reported - started:4.0f}s: {up} of {jobs} RUNNING; simulator requests "
                  f"so far: {dict(sorted(requests.items(), key=lambda kv: -kv[1])[:4])}",
                  flush=True)
        time.sleep(5)  # progress is read from ZooKeeper; nothing here waits on it
    return None


def measure(jobs: int, window: float, deadline: float) -> dict[str, Any]:
    workers = -(-jobs // SLOTS)
    with local_stack(flink=False) as (cluster, control), flink_simulator() as sim, \
            zk_store(cluster.zk_hosts, control.root) as store:
        write_configs(control.config_dir, sim, jobs)
        master_port = free_port()
        started = time.monotonic()
        master = control.start_master("master-a", "--metrics-port", str(master_port),
                                      "--spare-workers", "0", "--worker-slots", str(SLOTS))
        for index in range(workers):
            control.start_worker(f"worker-{index}", slots=SLOTS, nice=WORKER_NICE)
        all_running = ramp(store, sim, jobs, started, deadline)
        up = running(store) or 0
        print(f"{up} of {jobs} jobs RUNNING {time.monotonic() - started:.0f}s after the start; "
              f"measuring {window:g}s")
        metrics_url = f"http://127.0.0.1:{master_port}/metrics"
        time.sleep(10)  # let the first checkpoint statistics and restart counts settle
        before = sample(control, sim, metrics_url)
        time.sleep(window)  # the measurement window itself
        after = sample(control, sim, metrics_url)
        seconds = after["at"] - before["at"]
        tasks = {}
        for task, (total, count) in after["tasks"].items():
            was = before["tasks"].get(task, (0.0, 0.0))
            runs = count - was[1]
            tasks[task] = round((total - was[0]) / runs, 3) if runs else None
        worker_rss = [rss_mb(p.pid) for name, p in control.processes.items()
                      if name.startswith("worker-")]
        cpu = {name: (after["cpu"][name] - before["cpu"][name]) / seconds
               for name in after["cpu"]}
        worker_cpu = sum(v for name, v in cpu.items() if name.startswith("worker-"))
        return {
            "jobs": jobs,
            "workers": workers,
            "slots": SLOTS,
            "all_running_s": round(all_running, 1) if all_running is not None else None,
            "running_when_measured": up,
            "window_s": round(seconds, 1),
            "master_task_mean_s": tasks,
            "master_rss_mb": round(rss_mb(master.pid), 1),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--deadline", type=float, default=300.0,
                        help="Seconds to wait for every job to run before measuring anyway.")
    args = parser.parse_args()
    exit_on_sigterm()
    runs = []
    for jobs in args.jobs:
        result = measure(jobs, args.window, args.deadline)
        print(result)
        runs.append(result)
    write_results("scale", {"runs": runs})


if __name__ == "__main__":
    main()
