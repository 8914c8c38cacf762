"""How fast the `flinksched` command answers, as an operator runs it: the whole process, its
start included, `--help`, `status` of 50 jobs in a real ZooKeeper (no Flink), and `status`
against a ZooKeeper nobody serves (it gives up after its 4 s connect deadline).

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


def timed(argv: list[str], runs: int, exit_code: int = 0) -> dict[str, float]:
    """Median and worst seconds of `runs` runs, each ending with `exit_code`."""
    subprocess.run(argv, capture_output=True)  # the page cache, not the figure
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        ended = subprocess.run(argv, capture_output=True)
        seconds.append(time.perf_counter() - started)
        if ended.returncode != exit_code:
            raise SystemExit(f"{' '.join(argv)} exited {ended.returncode}, not {exit_code}: "
                             f"{ended.stderr.decode(errors='replace').strip()}")
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
    # Port 1 on loopback: refused at once, so the figure is the connect deadline and the start.
    report["unreachable"] = timed([FLINKSCHED, "--zk", "127.0.0.1:1", "status"],
                                  max(3, args.runs // 4), exit_code=2)  # 4 s each
    print(f"flinksched status, ZooKeeper unreachable: {report['unreachable']}", flush=True)
    write_results("cli-start", report)


if __name__ == "__main__":
    main()
