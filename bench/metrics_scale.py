"""The scrape cost of the leading master's /metrics with many jobs (a real ZooKeeper, no Flink).

    python -m bench.metrics_scale --jobs 2000

The master's own export pass reads every job's record and status from ZooKeeper and
encodes the per-job series (every 5 s); a scrape sends what it encoded. Reported: the export
pass, and the time and (uncompressed) size of `GET /metrics` as Prometheus sees them
(gzip), median of `--runs` scrapes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from bench.stackutil import local_stack, populate_jobs, write_results, zk_store
from common.telemetry.endpoints import Endpoints
from scheduler.master.process import Master


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with local_stack(flink=False) as (cluster, control), \
            zk_store(cluster.zk_hosts, control.root) as store:
        populate_jobs(store, args.jobs)
        master = Master(store, "bench-master", control.workdir)
        master.leading = True  # the export pass alone, without running an election
        export: list[float] = []
        for _ in range(5):
            started = time.perf_counter()
            master.export_metrics()
            export.append(time.perf_counter() - started)
        endpoints = Endpoints("127.0.0.1", 0)
        scrape: list[float] = []
        size = 0
        with httpx.Client() as client:
            for _ in range(args.runs):
                started = time.perf_counter()
                body = client.get(f"http://127.0.0.1:{endpoints.port}/metrics").content
                scrape.append(time.perf_counter() - started)
                size = len(body)
        endpoints.close()
        series = sum(1 for line in body.decode().splitlines() if line.startswith("flinksched_job"))
    report = {"jobs": args.jobs, "runs": args.runs,
              "export_pass_s_median": round(statistics.median(export), 3),
              "scrape_s_median": round(statistics.median(scrape), 3),
              "scrape_s_worst": round(max(scrape), 3),
              "response_bytes": size, "per_job_series": series}
    print(f"export {report['export_pass_s_median']}s, scrape {report['scrape_s_median']}s, "
          f"{size / 1e6:.2f} MB, {series} per-job series")
    write_results("metrics-scale", report)


if __name__ == "__main__":
    main()
