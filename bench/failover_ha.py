"""Master and worker loss on the real stack (medians of N):
  leader SIGKILL → a standby leads, and → it acts (syncs a new job file);
  worker SIGKILL → the spare owns the job.
The ZooKeeper session timeout is the tests' 6 s; targets are "under the timeout plus 1 s".

    python -m bench.failover_ha --runs 5
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time

from bench.stackutil import local_stack, write_results, zk_store
from common.store.zookeeper import Store
from tests.stack import ControlPlane
from tests.waiting import wait_until


def leader_failovers(control: ControlPlane, store: Store, runs: int) -> list[tuple[float, float]]:
    samples = []
    names = [f"master-{i}" for i in range(runs + 1)]
    control.start_master(names[0])
    wait_until(lambda: store.leader_id() == names[0], 30, "the first leader")
    for index in range(runs):
        leader, standby = names[index], names[index + 1]
        control.start_master(standby)
        wait_until(lambda: standby in [m for _, m in store.contenders()], 30,  # noqa: B023
                   "the standby to contend")
        killed = time.monotonic()
        control.signal(leader, signal.SIGKILL)
        control.write_job(f"probe-{index}")
        wait_until(lambda: store.leader_id() == standby, 30, "the standby to lead")  # noqa: B023
        leads = time.monotonic() - killed
        wait_until(lambda: store.job(f"probe-{index}"), 30, "the new leader to act")  # noqa: B023
        acts = time.monotonic() - killed
        samples.append((leads, acts))
        print(f"leader failover {index + 1}: leads after {leads:.2f}s, acts after {acts:.2f}s")
    return samples


def worker_failovers(control: ControlPlane, store: Store, runs: int) -> list[float]:
    control.write_job("held")
    control.start_master("worker-bench-master")
    samples = []
    control.start_worker("worker-0")
    wait_until(lambda: store.status("held")[0].phase == "Running", 120, "the job RUNNING")
    for index in range(runs):
        holder, spare = f"worker-{index}", f"worker-{index + 1}"
        control.start_worker(spare)
        wait_until(lambda: spare in store.workers(), 30, "the spare")  # noqa: B023
        killed = time.monotonic()
        control.signal(holder, signal.SIGKILL)
        wait_until(lambda: (store.owner("held") or ("",))[0] == spare, 30,  # noqa: B023
                   "the spare to own the job")
        samples.append(time.monotonic() - killed)
        print(f"worker failover {index + 1}: owned again after {samples[-1]:.2f}s")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep logs and state")
    args = parser.parse_args()
    with local_stack(keep=args.keep) as (cluster, control):
        with zk_store(cluster.zk_hosts, control.root) as store:
            leader = leader_failovers(control, store, args.runs)
        workers = ControlPlane(cluster, control.workdir / "workers")
        workers.workdir.mkdir()
        try:
            with zk_store(cluster.zk_hosts, workers.root) as store:
                worker = worker_failovers(workers, store, args.runs)
        finally:
            workers.stop_all()
    report = {
        "session_timeout_s": control.session_timeout,
        "leader_sigkill_to_new_leader_s": statistics.median(s[0] for s in leader),
        "leader_sigkill_to_new_leader_acting_s": statistics.median(s[1] for s in leader),
        "worker_sigkill_to_job_owned_s": statistics.median(worker),
        "worker_sigkill_to_job_owned_worst_s": max(worker),
        "runs": args.runs,
    }
    write_results("failover-ha", report)


if __name__ == "__main__":
    main()
