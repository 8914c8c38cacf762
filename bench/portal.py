"""The portal's pages with thousands of jobs in a real ZooKeeper (no Flink): the time of a
whole HTTP request, as a browser waits for it, served by the same server, application and
reader a master mounts on its HTTP port.

Each page is asked `--runs` times two ways: *read* (every request reads ZooKeeper anew, as
after the reader's `max_age`: a listing of the jobs and the nodes whose watch fired) and
*cached* (within the `max_age` every open tab shares); the very first fleet page of a
master reads every job's record, status and owner. The fleet page is paged server-side
(100 rows a page).

    python -m bench.portal --jobs 5000 --runs 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import httpx

from bench.stackutil import exit_on_sigterm, local_stack, populate_jobs, write_results, zk_store
from common.telemetry.endpoints import Endpoints
from scheduler.portal.app import portal_app
from scheduler.portal.reading import FLEET_MAX_AGE, PortalReader

PAGES = {
    "fleet": "/",
    "fleet filtered and sorted": "/?name=job-04&phase=Running&sort=-restarts",
    "fleet, last page": "/?page=50",
    "a job": "/jobs/job-02500",
}


def timed(client: httpx.Client, path: str, runs: int, jobs_expected: str) -> dict[str, Any]:
    samples, failures = [], []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            answer = client.get(path)
            answer.raise_for_status()
            if jobs_expected not in answer.text or 'data-stale="false"' not in answer.text:
                failures.append("stale or incomplete page")
                continue
        except httpx.HTTPError as exc:
            failures.append(repr(exc))
            continue
        samples.append(time.perf_counter() - started)
    if not samples:
        return {"runs": runs, "failed": failures[:3]}
    return {"runs": runs, "median_s": statistics.median(samples), "worst_s": max(samples),
            "best_s": min(samples), **({"failed": failures[:3]} if failures else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    exit_on_sigterm()
    report: dict[str, Any] = {"jobs": args.jobs, "runs": args.runs}
    with local_stack(flink=False) as (cluster, control), \
            zk_store(cluster.zk_hosts, control.root) as store:
        populate_jobs(store, args.jobs)
        for mode, max_age in (("read", 0.0), ("cached", 3600.0)):
            reader = PortalReader(store, max_age=max_age, deadline=30)
            endpoints = Endpoints("127.0.0.1", 0)
            endpoints.mount(portal_app(reader))
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{endpoints.port}",
                                  timeout=60) as client:
                    started = time.perf_counter()
                    client.get("/")  # the first read of all: every record, status and owner
                    report.setdefault(mode, {})["first read_s"] = time.perf_counter() - started
                    print(f"{mode:6} {'first fleet page':26} "
                          f"{report[mode]['first read_s'] * 1000:.0f} ms", flush=True)
                    for page, path in PAGES.items():
                        expected = f"{args.jobs} jobs" if page.startswith("fleet") else "job-02500"
                        figures = timed(client, path, args.runs, expected)
                        report.setdefault(mode, {})[page] = figures
                        shown = (f"median {figures['median_s'] * 1000:.0f} ms, worst "
                                 f"{figures['worst_s'] * 1000:.0f} ms"
                                 if "median_s" in figures else f"failed: {figures['failed']}")
                        print(f"{mode:6} {page:26} {shown}", flush=True)
            finally:
                endpoints.close()
                reader.close()
    report["fleet_max_age_s"] = FLEET_MAX_AGE
    write_results("portal", report)


if __name__ == "__main__":
    main()
