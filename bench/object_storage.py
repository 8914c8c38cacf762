"""State on a real S3 server (SeaweedFS, through Flink's flink-s3-fs-presto plugin) beside
state on local disk: FAILED → RUNNING of the same job; the session JobManager SIGKILLed
under a job on S3 (→ RUNNING, and how many checkpoints behind the newest in the bucket it
restored); and what superseded attempts leave in the bucket after many restarts with
retention (`checkpoints.retainAttempts: 1`) and without it (as before retention existed:
every attempt's directory kept).

Times are Flink's own job timestamps (FAILED of attempt N, RUNNING of attempt N+1), as in
`bench.failover`. Objects and bytes are what the bucket lists under each job's checkpoint
directory once the last attempt has checkpointed.

    python -m bench.object_storage --runs 10 --kills 3 --restarts 100
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from typing import Any

from bench.failover import flink_timestamp, measure_failovers
from bench.stackutil import exit_on_sigterm, local_devstack, write_results, zk_store
from common.flink.jobids import flink_job_id
from common.store.records import Phase
from common.store.zookeeper import Store
from scheduler.devstack.flinkhome import FLINK_VERSION
from scheduler.devstack.services import kill
from scheduler.devstack.stack import DevStack
from tests.objectstore import Bucket, state_on
from tests.stack import Cluster, ControlPlane
from tests.waiting import wait_until

KEEP_ALL = 1000  # retainAttempts high enough to keep every attempt: retention off


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "worst": max(values), "runs": len(values)}


def _own_checkpoint(store: Store, name: str, attempt: int) -> bool:
    status = store.status(name)[0]
    point = status.last_checkpoint
    return (status.phase == Phase.RUNNING and status.attempt == attempt and point is not None
            and f"/{status.flink_job_id}/" in point.path)


def _checkpointed(cluster: Cluster, job_id: str, count: int) -> bool:
    return cluster.completed_checkpoint_id(job_id) >= count


def _restored(cluster: Cluster, job_id: str) -> dict[str, Any] | None:
    """What Flink says the attempt restored from (its statistics lag a little)."""
    return (cluster.checkpoints(job_id).get("latest") or {}).get("restored")


def _pruned(bucket: Bucket, directory: str) -> bool:
    return len(bucket.attempt_directories(directory)) <= 2


def measure_retention(control: ControlPlane, store: Store, bucket: Bucket,
                      restarts: int) -> dict[str, Any]:
    """Two jobs restarted `restarts` times, each attempt checkpointing before the next: what
    their checkpoint directories hold at the end, with retention and without."""
    s3 = bucket.server
    jobs = {"retained": 1, "unpruned": KEEP_ALL}
    directories = {}
    for kind, retain in jobs.items():
        name = f"bench-{kind}"
        config = state_on(s3, f"bench/{kind}")
        directories[kind] = config["execution.checkpointing.dir"]
        control.write_job(name, config=config, checkpoints={"retainAttempts": retain})
    for attempt in range(1, restarts + 2):
        for kind in jobs:
            name = f"bench-{kind}"
            wait_until(partial(_own_checkpoint, store, name, attempt), 120,
                       f"{name} attempt {attempt} RUNNING with a checkpoint of its own")
        if attempt <= restarts:
            for kind in jobs:
                control.cli("restart", f"bench-{kind}", "--yes")
        if attempt % 5 == 0:
            print(f"restart {attempt} of {restarts}")
    found: dict[str, Any] = {}
    for kind, directory in directories.items():
        if kind == "retained":  # superseded directories go once the last attempt checkpointed
            wait_until(partial(_pruned, bucket, directory), 60,
                       "superseded attempts' checkpoints deleted")
        objects = bucket.objects(directory.rstrip("/") + "/")
        found[kind] = {"attempt_directories": len(bucket.attempt_directories(directory)),
                       "objects": len(objects), "bytes": sum(objects.values())}
    return found


def measure_jobmanager_kills(stack: DevStack, cluster: Cluster, control: ControlPlane,
                             store: Store, bucket: Bucket, runs: int) -> list[dict[str, float]]:
    """The session JobManager SIGKILLed under a job whose state is on S3, then started again:
    kill → RUNNING (Flink's timestamp; mostly the JobManager's own start), and how many
    completed checkpoints behind the newest in the bucket the next attempt restored."""
    name = "bench-jm-kill-s3"
    config = state_on(bucket.server, "bench/jm-kill")
    directory = config["execution.checkpointing.dir"]
    control.write_job(name, config=config, restartPolicy={"maxRestarts": 0})
    samples = []
    for attempt in range(1, runs + 1):
        job_id = flink_job_id(name, attempt)
        wait_until(partial(_own_checkpoint, store, name, attempt), 120,
                   f"attempt {attempt} RUNNING with a checkpoint of its own")
        wait_until(partial(_checkpointed, cluster, job_id, 3), 60,
                   "three checkpoints of the attempt")
        killed = time.time()
        kill(stack.flink_service("jobmanager"))
        newest = bucket.checkpoints(directory, job_id)[-1]
        stack.start_jobmanager()
        following = flink_job_id(name, attempt + 1)
        running = flink_timestamp(cluster, following, "RUNNING")
        restored = wait_until(partial(_restored, cluster, following), 30,
                              "the restored checkpoint reported")
        samples.append({"kill_to_running": running - killed,
                        "behind_newest": float(newest - int(restored["id"]))})
        print(f"JobManager kill {attempt}: RUNNING {samples[-1]['kill_to_running']:.2f}s "
              f"after, {samples[-1]['behind_newest']:.0f} checkpoint(s) behind the newest")
    control.remove_job(name)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="failovers of each job")
    parser.add_argument("--kills", type=int, default=3, help="JobManager SIGKILLs")
    parser.add_argument("--restarts", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs and state")
    args = parser.parse_args()
    exit_on_sigterm()
    report: dict[str, Any] = {"flink": FLINK_VERSION}
    with local_devstack(s3=True, keep=args.keep) as (stack, cluster, control):
        assert cluster.s3 is not None
        bucket = Bucket(cluster.s3)
        control.start_master()
        control.start_worker(slots=6)  # removed jobs hold their slot for a grace period
        with zk_store(cluster.zk_hosts, control.root) as store:
            failovers = {}
            for kind, config in (("disk", None), ("s3", state_on(cluster.s3, "bench/failover"))):
                marker = control.workdir / f"fail-{kind}"
                samples = measure_failovers(cluster, control, store, args.runs, marker,
                                            name=f"bench-failover-{kind}", config=config)
                failovers[kind] = summary([s["total"] for s in samples])
            report["failed_to_running_s"] = failovers
            report["s3_over_disk"] = (failovers["s3"]["median"]
                                      / failovers["disk"]["median"])
            kills = measure_jobmanager_kills(stack, cluster, control, store, bucket,
                                             args.kills)
            report["jobmanager_sigkill_to_running_s"] = summary(
                [k["kill_to_running"] for k in kills])
            report["jobmanager_sigkill_checkpoints_behind"] = max(
                k["behind_newest"] for k in kills)
            report["after_restarts"] = {"restarts": args.restarts,
                                        **measure_retention(control, store, bucket,
                                                            args.restarts)}
    write_results("object-storage", report)


if __name__ == "__main__":
    main()
