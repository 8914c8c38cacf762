"""How fast the `flinksched` command answers, as an operator runs it: the whole process, its
start included, `--help` and `status` of 50 jobs in a real ZooKeeper (no Flink).

    python -m bench.cli_start --runs 20

Each command runs `--runs` times after one run that is not counted; the report gives the
median and the worst.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.stackutil import local_stack, populate_jobs, write_results, zk_store

FLINKSCHED = str(Path(sys.executable).with_name("flinksched"))  # the installed command


def timed(argv: list[str], runs: int) -> dict[str, float]:
    subprocess.run(argv, capture_output=True, check=True)  # the page cache, not the figure
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        seconds.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(seconds), 3), "worst_s": round(max(seconds), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    report: dict[str, object] = {"runs": args.runs, "jobs": args.jobs,
                                 "help": timed([FLINKSCHED, "--help"], args.runs)}
    print(f"flinksched --help: {report['help']}", flush=True)
    with local_stack(flink=False) as (cluster, control):
        with zk_store(cluster.zk_hosts, control.root) as store:
            populate_jobs(store, args.jobs)
        report["status"] = timed([FLINKSCHED, "--zk", cluster.zk_hosts, "--root", control.root,
                                  "status"], args.runs)
    print(f"flinksched status ({args.jobs} jobs): {report['status']}", flush=True)
    write_results("cli-start", report)


if __name__ == "__main__":
    main()
