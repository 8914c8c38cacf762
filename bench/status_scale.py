"""`flinksched status` with many jobs in a real ZooKeeper (no Flink): the wall time of the
whole command, process start included, as an operator sees it.

    python -m bench.status_scale --jobs 2000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from kazoo.client import KazooClient

from bench.stackutil import local_stack, write_results
from common.records import Checkpoint, JobRecord, JobStatus
from common.store import Store

SPEC = {"job": {"jarURI": "file:///jobs/app.jar", "state": "running"}}
CLUSTER = {"metadata": {"name": "default"}, "spec": {"restUrl": "http://localhost:8081"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"table": [], "json": []}
    with local_stack(flink=False) as (cluster, control):
        client = KazooClient(hosts=cluster.zk_hosts)
        client.start()
        store = Store(client, control.root)
        store.ensure_layout()
        fence = store.join_election("bench")
        for index in range(args.jobs):
            name = f"job-{index:05d}"
            store.put_job(JobRecord(name, SPEC, CLUSTER, 1, "h", "bench"), fence, create=True)
            status = JobStatus(phase="Running", flink_job_id="0" * 32, attempt=1,
                               observed_generation=1, since=time.time(),
                               last_checkpoint=Checkpoint("file:///c/chk-1", 1,
                                                          int(time.time() * 1000)))
            store.zk.set(store.job_path(name) + "/status",
                         json.dumps(status.to_json()).encode())
        client.stop()
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
