"""Faults in state on the real local stack: how long until every job runs again.

- broken newest checkpoint: two checkpoints are triggered, the newest one's `_metadata` is
  made unreadable, the job fails. FAILED → RUNNING (Flink's own timestamps) includes the
  submission Flink rejects and the next one from the checkpoint before; measured beside the
  same failure with both checkpoints intact, run for run, interleaved.
- ZooKeeper wiped: the server is killed and restarted with an empty data directory while
  jobs run. ZooKeeper serving again → every job owned again with its attempt RUNNING (the
  same attempt: adopted), and the Flink submissions counted, which must not change.

    python -m bench.state_faults --runs 5
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from kazoo.handlers.threading import KazooTimeoutError

from bench.stackutil import exit_on_sigterm, local_stack, write_results, zk_store
from common.store.records import JobStatus
from common.store.zookeeper import Store
from tests.stack import Cluster, ControlPlane
from tests.waiting import wait_until
from tests.zkserver import ZooKeeperServer

NAME = "bench-broken-newest"


def _timestamp(cluster: Cluster, job_id: str, state: str, timeout: float = 120) -> float:
    found = wait_until(lambda: (cluster.get(f"/jobs/{job_id}") or {}).get("timestamps", {})
                       .get(state), timeout, f"{job_id} to record {state}")
    return float(found) / 1000


def _trigger_checkpoint(cluster: Cluster, job_id: str) -> str:
    """A checkpoint taken now, through Flink's REST API; its path once completed. A trigger
    Flink declines (its tasks are still being deployed) is repeated."""

    def taken() -> str | None:
        answer = httpx.post(f"{cluster.rest_url}/jobs/{job_id}/checkpoints", json={},
                            timeout=10)
        trigger = answer.json()["request-id"]

        def done() -> dict[str, Any] | None:
            result = httpx.get(f"{cluster.rest_url}/jobs/{job_id}/checkpoints/{trigger}",
                               timeout=10).json()
            completed = (result.get("status") or {}).get("id") == "COMPLETED"
            return dict(result.get("operation") or {"failed": True}) if completed else None

        operation = wait_until(done, 60, f"checkpoint of {job_id}")
        checkpoint = operation.get("checkpointId")
        return None if checkpoint is None else str(checkpoint)

    checkpoint = wait_until(taken, 60, f"a checkpoint Flink takes of {job_id}", interval=0.5)
    return str(cluster.state_dir / "checkpoints" / job_id / f"chk-{checkpoint}")


def running_after(store: Store, attempt: int) -> JobStatus | None:
    status = store.status(NAME)[0]
    return status if status.phase == "Running" and status.attempt > attempt else None


def measure_broken_newest(cluster: Cluster, control: ControlPlane, store: Store, runs: int,
                          ) -> dict[str, list[float | None]]:
    marker = control.workdir / "broken-newest-fail"
    # Checkpoints only when asked for, so "the newest" stays the newest until the failure.
    control.write_job(NAME, args=["--fail-marker", str(marker)],
                      config={"execution.checkpointing.interval": "1h"},
                      restartPolicy={"maxRestarts": 1000, "window": "10m",
                                     "backoff": {"initial": "0s", "max": "0s"}})
    samples: dict[str, list[float | None]] = {"intact": [], "broken": []}
    for run in range(2 * runs):
        kind = "broken" if run % 2 else "intact"
        try:
            status = wait_until(lambda: running_after(store, 0), 120, "the job RUNNING")
            current = status.flink_job_id
            _trigger_checkpoint(cluster, current)
            newest = Path(_trigger_checkpoint(cluster, current))
            if kind == "broken":
                (newest / "_metadata").write_bytes(b"not a checkpoint")
            marker.touch()
            failed = _timestamp(cluster, current, "FAILED")
            earlier = status.attempt
            following = wait_until(lambda: running_after(store, earlier), 120,  # noqa: B023
                                   "a later attempt RUNNING")
            running = _timestamp(cluster, following.flink_job_id, "RUNNING")
            samples[kind].append(running - failed)
            print(f"{kind} run {run // 2 + 1}: FAILED → RUNNING {running - failed:.3f}s "
                  f"(attempt {status.attempt} → {following.attempt})")
        except AssertionError as exc:
            samples[kind].append(None)
            print(f"{kind} run {run // 2 + 1}: did not finish: {exc}")
    control.remove_job(NAME)
    return samples


def measure_zookeeper_wiped(cluster: Cluster, control: ControlPlane, runs: int,
                            jobs: int) -> dict[str, Any]:
    server = ZooKeeperServer(control.workdir / "own-zk")
    server.start()
    names = [f"bench-wiped-{n}" for n in range(jobs)]
    seconds: list[float | None] = []
    restarts = 0
    try:
        for name in names:
            control.write_job(name)
        control.start_master("wiped-master", zk=server.hosts)
        control.start_worker("wiped-worker", slots=jobs, zk=server.hosts)
        def all_running(store: Store, expected: dict[str, int]) -> bool:
            try:
                for name in names:
                    status = store.status(name)[0]
                    if status.phase != "Running" or store.owner(name) is None:
                        return False
                    if expected and status.attempt != expected[name]:
                        return False
            except Exception:  # a wiped tree answers NoNode until the leader syncs
                return False
            return True

        with zk_store(server.hosts, control.root) as store:
            wait_until(lambda: all_running(store, {}), 180, "every job RUNNING")
            attempts = {name: store.status(name)[0].attempt for name in names}
        for run in range(1, runs + 1):
            before = {name: cluster.submissions(name) for name in names}
            serving = server.wipe()
            # A client of the benchmark's own that saw the old data would be refused as well:
            # each wipe is watched through a new one.
            try:
                with zk_store(server.hosts, control.root, start_timeout=60) as store:
                    wait_until(lambda: all_running(store, attempts), 120,
                               "every job owned and adopted")
                    seconds.append(time.monotonic() - serving)
            except (AssertionError, KazooTimeoutError) as exc:
                seconds.append(None)
                print(f"wipe {run}: did not finish: {exc!r}")
            added = sum(len(cluster.submissions(n)) - len(before[n]) for n in names)
            restarts += added
            print(f"wipe {run}: every job owned and adopted "
                  f"{seconds[-1] if seconds[-1] is None else round(seconds[-1], 2)}s "
                  f"after ZooKeeper served again; {added} Flink submissions")
    finally:
        control.stop_all()
        for name in names:
            control.remove_job(name)
        server.stop(signal.SIGKILL)
    return {"seconds": seconds, "flink_submissions_added": restarts,
            "session_timeout": control.session_timeout, "jobs": jobs}


def summarize(values: list[float | None]) -> dict[str, Any]:
    done = sorted(v for v in values if v is not None)
    if not done:
        return {"finished": 0, "runs": len(values)}
    return {"median": statistics.median(done), "worst": done[-1], "finished": len(done),
            "runs": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=4, help="jobs running while ZooKeeper is wiped")
    parser.add_argument("--keep", action="store_true", help="keep the logs and state")
    args = parser.parse_args()
    exit_on_sigterm()
    with local_stack(keep=args.keep) as (cluster, control):
        with zk_store(cluster.zk_hosts, control.root) as store:
            control.start_master("master-a", "--removal-grace", "0")
            control.start_worker()
            broken = measure_broken_newest(cluster, control, store, args.runs)
            control.stop_all()
            cluster.cancel_all()
        wiped = measure_zookeeper_wiped(cluster, control, args.runs, args.jobs)
    intact, spoiled = summarize(broken["intact"]), summarize(broken["broken"])
    report: dict[str, Any] = {
        "failed_to_running_intact": intact,
        "failed_to_running_broken_newest": spoiled,
        "broken_minus_intact_median": (spoiled["median"] - intact["median"]
                                       if "median" in spoiled and "median" in intact else None),
        "zookeeper_wiped_to_adopted": summarize(wiped["seconds"]),
        "zookeeper_wiped_flink_submissions_added": wiped["flink_submissions_added"],
        "session_timeout": wiped["session_timeout"],
        "jobs_while_wiped": wiped["jobs"],
        "runs": args.runs,
    }
    write_results("state-faults", report)


if __name__ == "__main__":
    main()
