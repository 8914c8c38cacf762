"""Jobs on a cluster of their own (local application clusters of the real distribution),
beside the same job on the session cluster: first start → RUNNING, FAILED → RUNNING,
JobManager SIGKILL → RUNNING, and the memory an own cluster costs.

Times are Flink's own job timestamps (RUNNING of the new attempt, FAILED of the old one, as
its cluster reported them before it was torn down) and this machine's clock for what the
benchmark did (writing the job's file, the SIGKILL):
  first start = RUNNING - the job's file written   (the master syncs it, assigns it; the
                                                   worker claims it and starts the cluster)
  FAILED      = RUNNING of attempt N+1 - FAILED of attempt N
  SIGKILL     = RUNNING of attempt N+1 - the JobManager killed
Memory: the resident set (VmRSS) of the JobManager and TaskManager JVMs of a running attempt
(process sizes 768m and 1024m, as the tests' `own` cluster), once it has checkpointed a few
times; beside it, the session cluster's JobManager and TaskManager, which serve every job.

    python -m bench.own_clusters --runs 5
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.stackutil import exit_on_sigterm, local_stack, memory_mb, write_results, zk_store
from common.flink.jobids import flink_job_id
from common.processes import group_alive
from common.store.zookeeper import Store
from scheduler.devstack.flinkhome import FLINK_VERSION
from scheduler.devstack.services import running_pid
from scheduler.devstack.stack import DevStack, StackConfig
from tests.stack import OWN_CLUSTER, OWN_CLUSTER_DOCUMENT, Cluster, ControlPlane
from tests.waiting import wait_until
from worker.targets.application.local import RECORD, read_record

RATE = "20"


def _json(url: str, path: str) -> Any:
    try:
        answer = httpx.get(url + path, timeout=2)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def _status_url(store: Store, name: str, attempt: int) -> str:
    def found() -> str | None:
        status = store.status(name)[0]
        return status.cluster_url if status.attempt == attempt and status.cluster_url else None
    return wait_until(found, 120, f"{name} attempt {attempt}'s own cluster")


def _timestamp(url: str, job_id: str, state: str, timeout: float = 120) -> float:
    """Flink's time of the job reaching `state`, polled often (an own cluster of a FAILED
    attempt lives only until the worker read its root cause)."""
    found = wait_until(lambda: ((_json(url, f"/jobs/{job_id}") or {}).get("timestamps") or {})
                       .get(state), timeout, f"{job_id} to record {state}", interval=0.01)
    return float(found) / 1000


def _running_at(store: Store, name: str, attempt: int) -> tuple[float, str]:
    url = _status_url(store, name, attempt)
    return _timestamp(url, flink_job_id(name, attempt), "RUNNING"), url


# A job's program other than the example jar, from the marker it fails on (tests.programs).
Program = Callable[[Path], dict[str, Any]]


def removed(store: Store, name: str) -> None:
    """Stopped with its savepoint: Removed, or already deleted (a grace period of 0 deletes
    it within a sync of the removal)."""
    wait_until(lambda: store.job(name) is None or store.status(name)[0].phase == "Removed", 60,
               f"{name} removed")


def first_starts(control: ControlPlane, store: Store, runs: int, own: bool,
                 program: Program | None = None, label: str = "") -> list[float]:
    samples = []
    kind = label or ("own" if own else "session")
    for run in range(runs):
        name = f"bench-{kind}-first-{run}"
        written = time.time()
        control.write_job(name, args=["--rate", RATE],
                          cluster=OWN_CLUSTER if own else "default",
                          program=program(control.workdir / f"{name}-marker") if program
                          else None)
        if own:
            running, _ = _running_at(store, name, 1)
        else:
            running = _timestamp(control.cluster.rest_url, flink_job_id(name, 1), "RUNNING")
        samples.append(running - written)
        print(f"first start ({kind}): {samples[-1]:.3f}s")
        control.remove_job(name)
        removed(store, name)
    return samples


def failovers(control: ControlPlane, store: Store, runs: int, own: bool,
              fault: Callable[[str, str, int], float] | None = None,
              program: Program | None = None, label: str = "") -> list[float]:
    """Each run: the fault (the fail marker, or `fault`) on attempt N, then attempt N+1's
    RUNNING minus the fault's time (FAILED, or what `fault` returns)."""
    kind = label or ("own" if own else "session")
    name = f"bench-{kind}-{'kill' if fault else 'fail'}"
    marker = control.workdir / f"{name}-marker"
    # Every failure here is a first one: the immediate restart, not the policy's backoff.
    control.write_job(name, args=["--rate", RATE, "--fail-marker", str(marker)],
                      restartPolicy={"maxRestarts": 100, "backoff": {"initial": "0s", "max": "0s"}},
                      cluster=OWN_CLUSTER if own else "default",
                      program=program(marker) if program else None)
    samples = []
    for attempt in range(1, runs + 1):
        job_id = flink_job_id(name, attempt)
        url = _status_url(store, name, attempt) if own else control.cluster.rest_url
        wait_until(lambda: (((_json(url, f"/jobs/{job_id}/checkpoints") or {})  # noqa: B023
                             .get("counts") or {}).get("completed", 0)) >= 1, 120,
                   f"a checkpoint of attempt {attempt}")
        if fault is None:
            marker.touch()
            began = _timestamp(url, job_id, "FAILED")
        else:
            began = fault(name, job_id, attempt)
        if own:
            running, _ = _running_at(store, name, attempt + 1)
        else:
            running = _timestamp(url, flink_job_id(name, attempt + 1), "RUNNING")
        samples.append(running - began)
        what = "JobManager SIGKILL" if fault else "FAILED"
        print(f"{what} → RUNNING ({kind}), attempt {attempt}: {samples[-1]:.3f}s")
    control.remove_job(name)
    removed(store, name)
    return samples


def kill_jobmanager(control: ControlPlane) -> Callable[[str, str, int], float]:
    def kill(name: str, job_id: str, attempt: int) -> float:
        recorded = read_record(control.applications_dir / name / job_id)
        assert recorded is not None, f"no record of {job_id}'s cluster"
        pid = recorded.processes["jobmanager"][0]
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        return killed
    return kill


def own_memory(control: ControlPlane, store: Store) -> dict[str, float]:
    """VmRSS of a running attempt's JobManager and TaskManager, after five checkpoints."""
    name = "bench-own-memory"
    control.write_job(name, args=["--rate", RATE], cluster=OWN_CLUSTER)
    url = _status_url(store, name, 1)
    job_id = flink_job_id(name, 1)
    wait_until(lambda: ((_json(url, f"/jobs/{job_id}/checkpoints") or {}).get("counts")
                        or {}).get("completed", 0) >= 5, 120, "five checkpoints")
    recorded = read_record(control.applications_dir / name / job_id)
    assert recorded is not None and (control.applications_dir / name / job_id / RECORD).exists()
    found = {role: memory_mb(pid) for role, (pid, _) in recorded.processes.items()}
    control.remove_job(name)
    return {"jobmanager_mb": found["jobmanager"], "taskmanager_mb": found["taskmanager-0"],
            "total_mb": sum(found.values())}


def session_memory(stack: DevStack) -> dict[str, float]:
    found = {}
    for role in ("jobmanager", "taskmanager"):
        pid = running_pid(stack.flink_service(role))
        assert pid is not None, f"the session cluster's {role} is not running"
        # its process group: the JVM, and for the TaskManager the supervisor that keeps it
        found[role] = sum(memory_mb(member) for member in group_alive(pid))
    return {"jobmanager_mb": found["jobmanager"], "taskmanager_mb": found["taskmanager"],
            "total_mb": sum(found.values())}


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "worst": max(values), "best": min(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the logs and state")
    args = parser.parse_args()
    exit_on_sigterm()
    report: dict[str, Any] = {"runs": args.runs, "flink_version": FLINK_VERSION,
                              "own_cluster": OWN_CLUSTER_DOCUMENT["spec"]}
    with local_stack(keep=args.keep) as (cluster, control), \
            zk_store(cluster.zk_hosts, control.root) as store:
        control.start_master("master-a", "--removal-grace", "0")
        control.start_worker("worker-a", slots=4)
        measured: dict[str, dict[str, list[float]]] = {"own": {}, "session": {}}
        for kind, own in (("session", False), ("own", True)):
            measured[kind]["first_start"] = first_starts(control, store, args.runs, own)
            measured[kind]["failed_to_running"] = failovers(control, store, args.runs, own)
        measured["own"]["jobmanager_sigkill_to_running"] = failovers(
            control, store, args.runs, True, kill_jobmanager(control))
        report["memory"] = {"own_cluster": own_memory(control, store),
                            "session_cluster": session_memory(_stack_of(cluster))}
    for kind, figures in measured.items():
        report[kind] = {figure: summarize(values) for figure, values in figures.items()}
    report["own_over_session"] = {
        figure: report["own"][figure]["median"] / report["session"][figure]["median"]
        for figure in ("first_start", "failed_to_running")}
    write_results("own-clusters", report)


def _stack_of(cluster: Cluster) -> DevStack:
    """The bench stack's own view of its processes (their pid files in its state dir)."""
    return DevStack(StackConfig(state_dir=cluster.state_dir))


if __name__ == "__main__":
    main()
