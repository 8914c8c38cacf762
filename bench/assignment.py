"""Assignment at scale with simulated workers: 2,000 jobs across 200 workers on a real
ZooKeeper, no Flink. Times the leader's assignment pass and counts ZooKeeper requests.

    python -m bench.assignment --jobs 2000 --workers 200
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from kazoo.client import KazooClient

from bench.stackutil import local_stack, write_results, zk_packets_received
from common.store.records import JobRecord, WorkerInfo
from common.store.zookeeper import Store
from scheduler.master.process import Master

SPEC = {"job": {"jarURI": "file:///jobs/app.jar"}, "restartPolicy": {}, "savepoints": {}}
CLUSTER = {"metadata": {"name": "default"}, "spec": {"restUrl": "http://localhost:8081"}}


def run_once(hosts: str, root: str, jobs: int, workers: int, tmp: Path) -> tuple[float, int]:
    leader_client = KazooClient(hosts=hosts)
    workers_client = KazooClient(hosts=hosts)
    leader_client.start()
    workers_client.start()
    try:
        store = Store(leader_client, root)
        store.ensure_layout()
        master = Master(store, "bench-master", tmp)
        master.fence = store.join_election(master.id)
        for index in range(jobs):
            record = JobRecord(f"job-{index:05d}", SPEC, CLUSTER, 1, "h", "bench")
            store.put_job(record, master.fence, create=True)
        simulated = Store(workers_client, root)
        slots = -(-jobs // workers)
        for index in range(workers):
            simulated.register_worker(WorkerInfo(f"sim-{index:04d}", "sim", 0, slots, "sim", 0))
        assert master.check_leadership()
        before = zk_packets_received(hosts)
        started = time.perf_counter()
        master.assign()
        took = time.perf_counter() - started
        operations = zk_packets_received(hosts) - before
        assigned = sum(len(v) for v in store.assignments().values())
        assert assigned == jobs, f"assigned {assigned} of {jobs}"
        return took, operations
    finally:
        leader_client.stop()
        workers_client.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    samples = []
    with local_stack(flink=False) as (cluster, control):
        for run in range(args.runs):
            took, operations = run_once(cluster.zk_hosts, f"/bench-{run}", args.jobs,
                                        args.workers, control.workdir)
            samples.append((took, operations))
            print(f"run {run + 1}: {took:.3f}s, {operations} ZooKeeper requests")
    report = {
        "jobs": args.jobs, "workers": args.workers, "runs": args.runs,
        "assignment_pass_s_median": statistics.median(s[0] for s in samples),
        "zookeeper_requests_median": statistics.median(s[1] for s in samples),
    }
    write_results("assignment", report)


if __name__ == "__main__":
    main()
