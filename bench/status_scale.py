"""`flinksched status` with many jobs in a real ZooKeeper (no Flink): the wall time of the
whole command, process start included, as an operator sees it.

    python -m bench.status_scale --jobs 2000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bench.stackutil import local_stack, populate_jobs, write_results, zk_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"table": [], "json": []}
    with local_stack(flink=False) as (cluster, control):
        with zk_store(cluster.zk_hosts, control.root) as store:
            populate_jobs(store, args.jobs)
        for output in ("table", "json"):
            for _ in range(args.runs):
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "-m", "scheduler", "--zk", cluster.zk_hosts, "--root",
                     control.root, "status", "-o", output], capture_output=True, check=True)
                samples[output].append(time.perf_counter() - started)
                assert result.stdout.count(b"job-") == args.jobs
            print(f"status -o {output}: median {statistics.median(samples[output]):.3f}s")
    report = {"jobs": args.jobs, "runs": args.runs,
              "status_table_s_median": statistics.median(samples["table"]),
              "status_json_s_median": statistics.median(samples["json"])}
    write_results("status-scale", report)


if __name__ == "__main__":
    main()
