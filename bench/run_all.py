"""`make bench`: every benchmark, then one results file and one table.

    python -m bench.run_all [--quick]

Each benchmark runs as its own process and keeps its report as
bench/results/<date>-<name>.json; this then writes bench/results/<date>.json (every report,
with the machine's core count and memory) and bench/results/<date>.md (the table, beside
the targets), and puts the same table into bench/README.md between its `latest` markers.
`--quick` runs fewer repetitions and smaller scale runs, to check that everything works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scale import summarise
from bench.stackutil import RESULTS

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
START, END = "<!-- latest: written by `make bench` -->", "<!-- /latest -->"

# name: (module, full arguments, --quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "failover": ("bench.failover", ["--runs", "10"], ["--runs", "3", "--polls"]),
    "failover-ha": ("bench.failover_ha", ["--runs", "5"], ["--runs", "1"]),
    "state-faults": ("bench.state_faults", ["--runs", "5"], ["--runs", "1"]),
    "own-clusters": ("bench.own_clusters", ["--runs", "5"], ["--runs", "1"]),
    "program-kinds": ("bench.program_kinds", ["--runs", "5"], ["--runs", "1"]),
    "object-storage": ("bench.object_storage",
                       ["--runs", "10", "--kills", "3", "--restarts", "100"],
                       ["--runs", "2", "--kills", "1", "--restarts", "3"]),
    "rollback": ("bench.rollback", ["--runs", "3"], ["--runs", "1"]),
    "worker-memory": ("bench.worker_memory", [], []),
    "assignment": ("bench.assignment", [], ["--runs", "1"]),
    "status-scale": ("bench.status_scale", [], ["--runs", "1"]),
    "portal": ("bench.portal", ["--jobs", "5000", "--runs", "20"], ["--runs", "3"]),
    "cli-start": ("bench.cli_start", ["--runs", "20"], ["--runs", "3"]),
    "config-sync": ("bench.config_sync", ["--change-runs", "10"],
                    ["--runs", "1", "--change-runs", "2"]),
    "metrics-scale": ("bench.metrics_scale", [], ["--runs", "3"]),
    "scale": ("bench.scale", ["--jobs", "1000", "5000", "5000", "5000"],
              ["--jobs", "300", "300", "--window", "20"]),
}


def machine() -> dict[str, Any]:
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                     .splitlines() if line.startswith("MemTotal:"))
    return {"cores": os.cpu_count(), "memory_gib": round(memory_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def run(name: str, quick: bool) -> float:
    module, full, short = BENCHMARKS[name]
    started = time.monotonic()
    print(f"== {name}: python -m {module} {' '.join(short if quick else full)}", flush=True)
    subprocess.run([sys.executable, "-m", module, *(short if quick else full)], cwd=REPO,
                   check=True)
    return time.monotonic() - started


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


Row = tuple[str, str, str]
Rows = Callable[[dict[str, Any]], list[Row]]


def _failover(r: dict[str, Any]) -> list[Row]:
    rows = [
        ("detection: FAILED → worker noticed, median / worst (1 s poll)",
         f"{_s(r['detection']['median'])} / {_s(r['detection']['worst'])}", ""),
        ("restart: noticed → RUNNING, median / worst",
         f"{_s(r['restart']['median'])} / {_s(r['restart']['worst'])}", ""),
        ("bare POST /jars/<id>/run → RUNNING, median",
         _s(r["bare_run"]["median"]), ""),
        ("restart / bare run", f"{r['restart_over_bare']:.2f}", "< 1.5"),
        ("FAILED → RUNNING, median / worst (1 s poll)",
         f"{_s(r['total']['median'])} / {_s(r['total']['worst'])}", "< 2 s"),
    ]
    push = r.get("push")
    if push:
        rows += [
            (f"with the listener: detection, median / p99 ({push['noticed_by_push']:g} of "
             f"{push['runs']} noticed by push)",
             f"{_s(push['detection']['median'])} / {_s(push['detection']['p99'])}",
             "p99 < 0.1 s"),
            ("with the listener: FAILED → RUNNING, median / p99",
             f"{_s(push['total']['median'])} / {_s(push['total']['p99'])}",
             "median < 0.25 s, p99 < 0.5 s"),
        ]
    for poll, d in sorted(r.get("detection_by_poll_s", {}).items(), key=lambda i: float(i[0])):
        target = "p99 < 1.2 s" if poll == "1" else ""
        rows.append((f"detection at a {poll} s poll: median / p99",
                     f"{_s(d['median'])} / {_s(d['p99'])}", target))
    return rows


def _failover_ha(r: dict[str, Any]) -> list[Row]:
    bound = f"< {r['session_timeout_s'] + 1:g} s"
    return [("leader SIGKILL → new leader acting", _s(r["leader_sigkill_to_new_leader_acting_s"]),
             bound),
            ("worker SIGKILL → job owned again", _s(r["worker_sigkill_to_job_owned_s"]), bound)]


def _state_faults(r: dict[str, Any]) -> list[Row]:
    def figure(summary: dict[str, Any]) -> str:
        if "median" not in summary:
            return f"did not finish ({summary['runs']} runs)"
        done = "" if summary["finished"] == summary["runs"] else (
            f", {summary['runs'] - summary['finished']} of {summary['runs']} did not finish")
        return f"{_s(summary['median'])} / {_s(summary['worst'])}{done}"

    gap = r.get("broken_minus_intact_median")
    return [
        ("FAILED → RUNNING, newest checkpoint broken: median / worst",
         figure(r["failed_to_running_broken_newest"]),
         f"within 2 s of intact ({_s(gap)} more)" if gap is not None else "within 2 s of intact"),
        ("FAILED → RUNNING, same failure, checkpoints intact: median / worst",
         figure(r["failed_to_running_intact"]), ""),
        (f"ZooKeeper wiped → all {r['jobs_while_wiped']} jobs owned and adopted: median / worst",
         figure(r["zookeeper_wiped_to_adopted"]),
         f"< session timeout + 5 s = {r['session_timeout'] + 5:g} s"),
        ("ZooKeeper wiped: Flink submissions added (restarts, duplicates)",
         str(r["zookeeper_wiped_flink_submissions_added"]), "0"),
    ]


def _object_storage(r: dict[str, Any]) -> list[Row]:
    failed, after = r["failed_to_running_s"], r["after_restarts"]

    def kept(kind: str) -> str:
        found = after[kind]
        return (f"{found['attempt_directories']} attempts, {found['objects']} objects, "
                f"{found['bytes'] / 1e3:.0f} kB")

    return [
        ("FAILED → RUNNING with state on S3, median / worst (on local disk: median)",
         f"{_s(failed['s3']['median'])} / {_s(failed['s3']['worst'])} "
         f"({_s(failed['disk']['median'])})", ""),
        ("JobManager SIGKILL → RUNNING with state on S3, median / worst (checkpoints behind "
         "the newest)", f"{_s(r['jobmanager_sigkill_to_running_s']['median'])} / "
         f"{_s(r['jobmanager_sigkill_to_running_s']['worst'])} "
         f"({r['jobmanager_sigkill_checkpoints_behind']:.0f})", "0 behind"),
        (f"checkpoints left after {after['restarts']} restarts, retention on / off",
         f"{kept('retained')} / {kept('unpruned')}", "2 attempts"),
    ]


def _rollback(r: dict[str, Any]) -> list[Row]:
    rows = []
    for kind, found in r["kinds"].items():
        figure = (f"{_s(found['median_s'])} / {_s(found['worst_s'])}" if found["finished"]
                  else "did not finish")
        rows.append((f"broken upgrade ({kind}): sync → RUNNING on the stable spec, median / "
                     f"worst of {found['finished']} of {len(found['runs'])}", figure,
                     "< 10 s" if kind != "state does not fit" else ""))
    return rows


def _program_kinds(r: dict[str, Any]) -> list[Row]:
    rows = []
    for figure, what in (("first_start", "first start"), ("failed_to_running", "FAILED")):
        medians = " / ".join(_s(r[kind][figure]["median"]) for kind in ("jar", "python", "sql"))
        rows.append((f"{what} → RUNNING beside a jar job, median: jar / Python / SQL",
                     medians, ""))
    return rows


def _own_clusters(r: dict[str, Any]) -> list[Row]:
    own, session, memory = r["own"], r["session"], r["memory"]

    def pair(figure: str) -> str:
        return f"{_s(own[figure]['median'])} / {_s(own[figure]['worst'])}"

    return [
        ("own cluster: first start → RUNNING, median / worst (session cluster: median)",
         f"{pair('first_start')} ({_s(session['first_start']['median'])})", ""),
        ("own cluster: FAILED → RUNNING, median / worst (session cluster: median)",
         f"{pair('failed_to_running')} ({_s(session['failed_to_running']['median'])})", ""),
        ("own cluster: JobManager SIGKILL → RUNNING, median / worst",
         pair("jobmanager_sigkill_to_running"), ""),
        ("own cluster: resident memory of its JobManager + TaskManager (768m + 1024m)",
         f"{memory['own_cluster']['total_mb']:.0f} MB", ""),
    ]


def _scale(r: dict[str, Any]) -> list[Row]:
    """Per job count: the value of a single run, or median / worst over repeated runs."""
    rows: list[Row] = []
    for size in sorted({run["jobs"] for run in r["runs"]}):
        runs = [run for run in r["runs"] if run["jobs"] == size]
        summary = r.get("summary", {}).get(str(size)) or summarise(runs)
        big = size >= 5000
        n = f"{size:,} jobs" + (f" ({len(runs)} runs: median / worst)" if len(runs) > 1 else "")

        def value(path: str, unit: str = "", digits: int = 3, median_only: bool = False,
                  summary: dict[str, Any] = summary) -> str:
            figure = summary.get(path)
            if figure is None:
                return "-"
            worst = figure["worst"]
            text = f"{figure['median']:.{digits}f}{unit}"
            if summary["runs"] > 1 and not median_only:
                text += " / " + ("did not finish" if worst is None else f"{worst:.{digits}f}{unit}")
            return text

        if summary["failed_runs"]:
            errors = "; ".join(run["error"] for run in runs if "error" in run)
            rows.append((f"{n}: runs that failed", f"{summary['failed_runs']} ({errors})", "0"))
        for run in runs:
            if "error" not in run and run["all_running_s"] is None:
                rows.append((f"{size:,} jobs: a run in which not every job ran by "
                             f"{run['deadline_s']:.0f} s",
                             f"{run['running_when_measured']:,} of {size:,} RUNNING at "
                             f"{run['counted_at_s']:.0f} s", ""))
        rows += [
            (f"{n}: all RUNNING after", value("all_running_s", " s", 0), "< 150 s" if big else ""),
            (f"{n}: leader's /metrics p99 while they start", value("scrape_start.p99_s", " s"),
             "< 1 s" if big else ""),
            (f"{n}: leader's /metrics p99 in steady state", value("scrape_steady.p99_s", " s"),
             "< 1 s" if big else ""),
            (f"{n}: master cycle (sync + assign + pool), mean", value("master_cycle_s", " s"),
             "< 1 s" if big else ""),
            (f"{n}: master metrics export pass, mean", value("master_task_mean_s.metrics", " s"),
             ""),
            (f"{n}: master peak resident memory", value("master_rss_peak_mb", " MB", 0),
             "< 300 MB" if big else ""),
            (f"{n}: worker resident memory (largest)", value("worker_rss_mb_max", " MB", 0), ""),
            (f"{n}: ZooKeeper writes per job per second", value("zk_writes_per_job_per_s", "", 4),
             "< 0.2"),
            (f"{n}: Flink REST requests per job per second",
             value("flink_rest_requests_per_job_per_s", "", 2), ""),
            (f"{size:,} jobs: CPU of all workers / of the master (cores, median)",
             f"{value('workers_cpu_cores', '', 2, True)} / "
             f"{value('master_cpu_cores', '', 2, True)}", ""),
        ]
    return rows


TABLES: dict[str, Rows] = {
    "failover": _failover,
    "failover-ha": _failover_ha,
    "worker-memory": lambda r: [("worker resident memory, 1 / 20 jobs",
                                 f"{r['worker_rss_mb_1_job']:.1f} MB / "
                                 f"{r['worker_rss_mb_20_jobs']:.1f} MB", "< 60 MB")],
    "assignment": lambda r: [(f"assignment of {r['jobs']:,} jobs over {r['workers']} workers",
                              _s(r["assignment_pass_s_median"]), "")],
    "status-scale": lambda r: [(f"`flinksched status` with {r['jobs']:,} jobs",
                                _s(r["status_table_s_median"]), "< 1 s")],
    "cli-start": lambda r: [
        ("`flinksched --help`, median / worst",
         f"{_s(r['help']['median_s'])} / {_s(r['help']['worst_s'])}", "< 0.2 s"),
        (f"`flinksched status` with {r['jobs']} jobs, median / worst",
         f"{_s(r['status']['median_s'])} / {_s(r['status']['worst_s'])}", "< 0.5 s")],
    "config-sync": lambda r: [
        (f"sync of {r['jobs']:,} job files, cold / one changed",
         f"{_s(r['sync_cycle']['cold']['median_s'])} / "
         f"{_s(r['sync_cycle']['one']['median_s'])}", "< 1 s"),
        *[(f"config file changed → new attempt submitted ({mode})", _s(v["median_s"]), "< 2 s")
          for mode, v in r.get("change_to_submitted", {}).items()]],
    "state-faults": _state_faults,
    "own-clusters": _own_clusters,
    "program-kinds": _program_kinds,
    "object-storage": _object_storage,
    "rollback": _rollback,
    "metrics-scale": lambda r: [(f"leader's /metrics with {r['jobs']:,} jobs: time / size",
                                 f"{_s(r['scrape_s_median'])} / "
                                 f"{r['response_bytes'] / 1e6:.2f} MB", "")],
    "scale": _scale,
}


def table(reports: dict[str, Any], host: dict[str, Any]) -> str:
    lines = [f"Machine: {host['cores']} cores, {host['memory_gib']} GiB, Python {host['python']}"
             f" ({time.strftime('%Y-%m-%d')}).", "",
             "| figure | value | target |", "|---|---|---|"]
    for name, render in TABLES.items():
        if name in reports:
            lines += [f"| {figure} | {value} | {target} |"
                      for figure, value, target in render(reports[name])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=None)
    args = parser.parse_args()
    date = time.strftime("%Y-%m-%d")
    durations = {name: round(run(name, args.quick), 1) for name in args.only or BENCHMARKS}
    reports = {}
    for name in BENCHMARKS:
        path = RESULTS / f"{date}-{name}.json"
        if path.exists():
            reports[name] = json.loads(path.read_text())
    host = machine()
    (RESULTS / f"{date}.json").write_text(json.dumps(
        {"machine": host, "quick": args.quick, "seconds": durations, "reports": reports},
        indent=2) + "\n")
    text = table(reports, host)
    (RESULTS / f"{date}.md").write_text(text)
    readme = BENCH / "README.md"
    current = readme.read_text()
    if START in current and END in current and not args.quick:
        head, rest = current.split(START, 1)
        readme.write_text(f"{head}{START}\n{text}{END}{rest.split(END, 1)[1]}")
    print(text)
    print(f"written to {RESULTS / f'{date}.json'} and {RESULTS / f'{date}.md'}")


if __name__ == "__main__":
    main()
