"""Resident memory of one worker process supervising 1 and then 20 jobs on the real stack.

    python -m bench.worker_memory
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from kazoo.client import KazooClient

from common.store import Store
from scheduler.devstack.services import free_port
from scheduler.devstack.stack import DevStack, StackConfig
from tests.stack import Cluster, ControlPlane
from tests.waiting import wait_until

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def all_running(store: Store, names: list[str]) -> bool:
    return all(store.status(name)[0].phase == "Running" for name in names)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="flinksched-bench-"))
    stack = DevStack(StackConfig(state_dir=work / "stack", zk_port=free_port(),
                                 rest_port=free_port(), rpc_port=free_port(), workers=0))
    stack.state_dir.mkdir(parents=True)
    report: dict[str, float] = {}
    try:
        jar = stack.prepare()
        stack.start_zookeeper()
        stack.start_flink()
        cluster = Cluster(stack.config.zk_hosts, stack.config.rest_url, jar, stack.state_dir)
        control = ControlPlane(cluster, work / "control")
        control.workdir.mkdir()
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
            report["worker_rss_mb_1_job"] = rss_mb(worker.pid)
            names = [f"mem-{i}" for i in range(20)]
            for name in names[1:]:
                control.write_job(name)
            wait_until(lambda: all_running(store, names), 300, "20 jobs RUNNING")
            time.sleep(5)
            report["worker_rss_mb_20_jobs"] = rss_mb(worker.pid)
        finally:
            client.stop()
            control.stop_all()
            cluster.cancel_all()
    finally:
        stack.down()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{time.strftime('%Y-%m-%d')}-worker-memory.json").write_text(
        json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
