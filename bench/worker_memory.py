"""Resident memory of one worker process supervising 1 and then 20 jobs on the real stack.

    python -m bench.worker_memory
"""

from __future__ import annotations

import time

from kazoo.client import KazooClient

from bench.stackutil import local_stack, memory_mb, write_results
from common.store.records import Phase
from common.store.zookeeper import Store
from tests.waiting import wait_until


def all_running(store: Store, names: list[str]) -> bool:
    return all(store.status(name)[0].phase == Phase.RUNNING for name in names)


def main() -> None:
    report: dict[str, float] = {}
    with local_stack() as (cluster, control):
        client = KazooClient(hosts=cluster.zk_hosts)
        client.start()
        store = Store(client, control.root)
        try:
            names = ["mem-0"]
            control.write_job("mem-0")
            control.start_master()
            worker = control.start_worker(slots=20)
            wait_until(lambda: all_running(store, names), 120, "1 job RUNNING")
            time.sleep(5)  # let the steady state settle before reading memory, not a sync
            report["worker_rss_mb_1_job"] = memory_mb(worker.pid)
            names = [f"mem-{i}" for i in range(20)]
            for name in names[1:]:
                control.write_job(name)
            wait_until(lambda: all_running(store, names), 300, "20 jobs RUNNING")
            time.sleep(5)
            report["worker_rss_mb_20_jobs"] = memory_mb(worker.pid)
        finally:
            client.stop()
    write_results("worker-memory", report)


if __name__ == "__main__":
    main()
