"""Config sync: one master sync cycle over 2,000 job files, and a file change → new attempt.

    python -m bench.config_sync --jobs 2000 --runs 5          # ZooKeeper only
    python -m bench.config_sync --change-runs 5               # also the real-Flink figure

Sync cycle (a real ZooKeeper, the master's own `sync`, in this process):
  cold     every file new: parse, validate, plan, create 2,000 jobs
  steady   nothing changed: stat every file, read the records, plan, write nothing
  one      one file changed among 2,000: parse it, plan, write one record and its event
Change → submitted (real Flink, master and worker processes): the time from a job file's
change (a new `args` value) to the new attempt accepted by Flink, by upgrade mode.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.stackutil import local_stack, write_results, zk_store
from common.flink.jobids import flink_job_id
from common.spec.configdir import load_config_paths
from common.store.zookeeper import Store
from scheduler.master.process import Master
from tests.stack import Cluster, ControlPlane
from tests.unit.configtexts import CLUSTER
from tests.waiting import wait_until

JOB = """\
apiVersion: flinksched/v1
kind: FlinkJob
metadata:
  name: %(name)s
  labels: {team: bench, tier: "%(tier)s"}
spec:
  cluster: default
  job:
    jarURI: file:///srv/jars/app.jar
    entryClass: com.example.Pipeline
    args: ["--source", "topic-%(name)s", "--rate", "%(rate)s"]
    parallelism: 2
    upgradeMode: savepoint
  flinkConfiguration:
    execution.checkpointing.interval: 30s
    state.backend.type: rocksdb
  restartPolicy: {maxRestarts: 10, window: 10m, backoff: {initial: 0s, max: 5m}}
  savepoints: {schedule: 6h, retain: 3}
"""


def write_job_files(directory: Path, jobs: int) -> None:
    (directory / "clusters.yaml").write_text(CLUSTER)
    for n in range(jobs):
        name = f"job-{n:05d}"
        (directory / f"{name}.yaml").write_text(JOB % {"name": name, "tier": n % 3, "rate": 10})


def measure_sync(hosts: str, jobs: int, runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"cold": [], "steady": [], "one": [], "parse_only": []}
    for run in range(runs):
        directory = Path(tempfile.mkdtemp(prefix="flinksched-sync-"))
        write_job_files(directory, jobs)
        with zk_store(hosts, f"/bench-sync-{uuid.uuid4().hex[:8]}") as store:
            store.ensure_layout()
            master = Master(store, "bench-master", directory)
            master.fence = store.join_election(master.id)
            assert master.check_leadership()
            for kind in ("cold", "steady", "one"):
                if kind == "one":
                    changed = directory / "job-00007.yaml"
                    changed.write_text(JOB % {"name": "job-00007", "tier": 1, "rate": 100 + run})
                started = time.perf_counter()
                summary = master.sync()
                samples[kind].append(time.perf_counter() - started)
                print(f"run {run + 1} {kind:6s} {samples[kind][-1]:.3f}s  {summary[:80]}")
            assert len(store.job_names()) == jobs
            started = time.perf_counter()
            load_config_paths([directory])
            samples["parse_only"].append(time.perf_counter() - started)
        shutil.rmtree(directory, ignore_errors=True)
    return {kind: {"median_s": round(statistics.median(values), 3),
                   "worst_s": round(max(values), 3)} for kind, values in samples.items()}


def measure_change(cluster: Cluster, control: ControlPlane, store: Store, mode: str,
                   runs: int) -> list[float]:
    name = f"bench-change-{mode}"
    control.write_job(name, args=["--keys", "1"], upgrade_mode=mode)
    wait_until(lambda: store.status(name)[0].phase == "Running", 120, f"{name} RUNNING")
    samples = []
    for run in range(1, runs + 1):
        attempt = store.status(name)[0].attempt
        wait_until(lambda: store.status(name)[0].phase == "Running", 120,
                   f"{name} RUNNING before change {run}")
        current = flink_job_id(name, attempt)
        wait_until(lambda: cluster.completed_checkpoint_id(current), 60,  # noqa: B023
                   "a checkpoint, as a job in service has one")
        # Edits come at any moment of the master's 1 s sync period: without this, the edit
        # would follow the checkpoint, the checkpoint the submission, and that the sync tick.
        time.sleep(random.uniform(0.0, 1.0))
        started = time.time()
        control.write_job(name, args=["--keys", str(run + 1)], upgrade_mode=mode)

        def submitted(attempt: int = attempt) -> bool:
            status = store.status(name)[0]
            return status.attempt > attempt and not status.submit_pending

        wait_until(submitted, 120, f"{name}: attempt after change {run}", interval=0.01)
        samples.append(time.time() - started)
        print(f"{mode} change {run}: new attempt submitted {samples[-1]:.3f}s after the edit")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--change-runs", type=int, default=5,
                        help="file change → submitted runs per upgrade mode (0: skip Flink)")
    args = parser.parse_args()
    report: dict[str, Any] = {"jobs": args.jobs, "runs": args.runs}
    # The sync on a quiet machine, as a master runs beside ZooKeeper, not beside Flink.
    with local_stack(flink=False) as (cluster, _):
        report["sync_cycle"] = measure_sync(cluster.zk_hosts, args.jobs, args.runs)
    if args.change_runs:
        with local_stack() as (cluster, control):
            control.start_master()
            control.start_worker("worker-a", slots=3)
            with zk_store(cluster.zk_hosts, control.root) as store:
                changes = {}
                for mode in ("savepoint", "last-state", "stateless"):
                    values = measure_change(cluster, control, store, mode, args.change_runs)
                    changes[mode] = {"median_s": round(statistics.median(values), 3),
                                     "worst_s": round(max(values), 3)}
                report["change_to_submitted"] = changes
    write_results("config-sync", report)


if __name__ == "__main__":
    main()
