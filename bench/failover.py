"""Failure → new attempt RUNNING on the real local stack, beside a bare jar run → RUNNING,
noticed by polling and by Flink's status listener pushing, side by side.

Times come from Flink's own job timestamps (FAILED of the old attempt, RUNNING of the new one)
and the worker's claim of the new attempt (the `claimedAt` of its restart event), all on this
machine's clock:
  detection = claim - FAILED     (the worker noticed, chose the restore point, claimed; the
                                 claim's time is when its cycle began to observe, so a cycle
                                 woken by a pushed FAILING can claim a few ms before Flink
                                 records FAILED)
  restart   = RUNNING - claim    (submission from the newest checkpoint until RUNNING),
              split at the moment Flink answered the run request (the event's own time)
  total     = RUNNING - FAILED
  bare      = RUNNING - POST /jars/<id>/run sent, for a fresh job on the same cluster (and
              for one restoring the newest checkpoint)

Without the listener: a control plane under a root the cluster's listener does not push to
(to it, the cluster has no listener). With it: one under the root it pushes to. On a Flink
without job status listeners (1.20) the pushed runs are left out and the report says why.

    python -m bench.failover --runs 5
    FLINKSCHED_FLINK_VERSION=1.20.3 python -m bench.failover --runs 5   # -failover-flink-1.20.3
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from bench.stackutil import local_stack, write_results, zk_store
from common.flink.client import FlinkClient
from common.flink.jobids import flink_job_id, name_prefix
from common.flink.versions import parse_version
from common.store.zookeeper import Store
from scheduler.devstack.flinkhome import DEFAULT_VERSION, FLINK_VERSION
from tests.stack import PUSH_ROOT, Cluster, ControlPlane
from tests.waiting import wait_until
from worker.decide.restore_rules import newest
from worker.restore import retained_in


def flink_timestamp(cluster: Cluster, job_id: str, state: str) -> float:
    """When Flink says the job reached `state` (its own timestamp, in seconds)."""
    found = wait_until(lambda: (cluster.get(f"/jobs/{job_id}") or {}).get("timestamps", {})
                       .get(state), 120, f"{job_id} to record {state}")
    return float(found) / 1000


def measure_failovers(cluster: Cluster, control: ControlPlane, store: Store, runs: int,
                      marker: Path, poll: float = 1.0, name: str = "",
                      config: dict[str, str] | None = None) -> list[dict[str, float]]:
    name = name or ("bench-failover" if poll == 1.0
                    else f"bench-failover-poll-{poll:g}".replace(".", ""))
    # Every failure here is a first failure: measure the immediate restart, not the backoff.
    control.write_job(name, args=["--fail-marker", str(marker)], pollInterval=f"{poll:g}s",
                      restartPolicy={"backoff": {"initial": "0s", "max": "0s"}}, config=config)
    samples = []
    for attempt in range(1, runs + 1):
        current = flink_job_id(name, attempt)
        wait_until(lambda: cluster.completed_checkpoint_id(current) >= 1, 120,  # noqa: B023
                   f"a checkpoint of attempt {attempt}")
        marker.touch()
        failed = flink_timestamp(cluster, current, "FAILED")
        running = flink_timestamp(cluster, flink_job_id(name, attempt + 1), "RUNNING")
        decided = f"restarted attempt {attempt + 1} "
        # Written once Flink answered, which is a little after it reports RUNNING.
        event = wait_until(lambda: next((e for e in store.events(name)
                                         if e["message"].startswith(decided)), None),  # noqa: B023
                           30, f"the event of attempt {attempt + 1}")
        # The event is written once Flink answered the run request: the restart splits into
        # claim → answered (ZooKeeper claim, request, Flink building the job) and the rest.
        claimed, answered = float(event["claimedAt"]), float(event["ts"])
        samples.append({"detection": claimed - failed, "restart": running - claimed,
                        "claim_to_answered": answered - claimed,
                        "answered_to_running": running - answered, "total": running - failed,
                        "pushed": 1.0 if event.get("noticedBy") == "push" else 0.0})
        print(f"failover {attempt} (poll {poll:g}s, noticed by {event.get('noticedBy')}): "
              + ", ".join(f"{k} {v:.3f}s" for k, v in samples[-1].items() if k != "pushed"))
    control.remove_job(name)
    return samples


def measure_bare_runs(cluster: Cluster, runs: int, restore_from: str = "",
                      answered: list[float] | None = None) -> list[float]:
    """POST /jars/<id>/run → RUNNING, fresh or restoring `restore_from`; `answered` gets
    each request's answer → RUNNING."""
    client = FlinkClient(cluster.rest_url)
    jar_id = client.upload_jar(cluster.example_jar, "bench-bare.jar")
    samples = []
    for _ in range(runs):
        job_id = uuid.uuid4().hex
        body: dict[str, Any] = {
            "jobId": job_id, "parallelism": 1,
            "entryClass": "dev.flinksched.examples.StatefulCounter",
            "flinkConfiguration": {"execution.checkpointing.interval": "1s"}}
        if restore_from:
            body["savepointPath"] = restore_from
        sent = time.time()
        client.run_jar(jar_id, body)
        done = time.time()
        running = flink_timestamp(cluster, job_id, "RUNNING")
        samples.append(running - sent)
        if answered is not None:
            answered.append(running - done)
        client.cancel(job_id)
        wait_until(lambda: cluster.job_state(job_id) == "CANCELED", 60,  # noqa: B023
                   "the bare job to cancel")
        kind = "restoring" if restore_from else "fresh"
        print(f"bare run ({kind}): {samples[-1]:.3f}s")
    client.close()
    return samples


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "worst": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--polls", type=float, nargs="*", default=[0.5, 2.0],
                        help="further poll intervals to measure detection at (1 s always)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and state")
    args = parser.parse_args()
    with local_stack(keep=args.keep) as (cluster, control), \
            zk_store(cluster.zk_hosts, control.root) as store:
        control.start_master("master-a", "--removal-grace", "0")
        control.start_worker()
        failovers = measure_failovers(cluster, control, store, args.runs,
                                      control.workdir / "fail-marker")
        detection = {"1": _detection(failovers)}
        for poll in args.polls:
            detection[f"{poll:g}"] = _detection(measure_failovers(
                cluster, control, store, args.runs, control.workdir / f"fail-{poll:g}", poll))
        control.stop_all()
        listener = parse_version(FLINK_VERSION).has_status_listener
        pushed = measure_pushed(cluster, control.workdir / "push", args.runs) if listener else []
        cluster.cancel_all()
        # ZooKeeper's record lags Flink, which keeps only the newest few: take the disk's.
        last = newest(retained_in((cluster.state_dir / "checkpoints").as_uri(),
                                       name_prefix("bench-failover")))
        bare = measure_bare_runs(cluster, args.runs)
        answered: list[float] = []
        bare_restoring = measure_bare_runs(cluster, args.runs, last.path if last else "",
                                           answered)
    report: dict[str, Any] = {
        name: summarize([s[name] for s in failovers])
        for name in ("detection", "restart", "claim_to_answered", "answered_to_running",
                     "total")
    }
    report["bare_run_restoring_answered_to_running"] = summarize(answered)
    report["bare_run"] = summarize(bare)
    report["bare_run_restoring"] = summarize(bare_restoring)
    report["restart_over_bare"] = report["restart"]["median"] / report["bare_run"]["median"]
    report["restart_over_bare_restoring"] = (
        report["restart"]["median"] / report["bare_run_restoring"]["median"])
    report["detection_by_poll_s"] = detection
    if pushed:
        report["push"] = {name: percentiles([s[name] for s in pushed])
                          for name in ("detection", "restart", "total")}
        report["push"]["noticed_by_push"] = sum(s["pushed"] for s in pushed)
        report["push"]["runs"] = len(pushed)
    else:
        report["push"] = {"runs": 0, "unavailable": f"Flink {FLINK_VERSION} has no job status "
                                                    "listeners"}
    report["runs"] = args.runs
    report["flink_version"] = FLINK_VERSION
    write_results("failover" if FLINK_VERSION == DEFAULT_VERSION
                  else f"failover-flink-{FLINK_VERSION}", report)


def measure_pushed(cluster: Cluster, workdir: Path, runs: int) -> list[dict[str, float]]:
    """The same failovers with the cluster's listener pushing to the control plane."""
    workdir.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(cluster, workdir, root=PUSH_ROOT)
    try:
        with zk_store(cluster.zk_hosts, PUSH_ROOT) as store:
            plane.start_master("master-push", "--removal-grace", "0")
            plane.start_worker("worker-push")
            return measure_failovers(cluster, plane, store, runs, workdir / "fail-marker",
                                     name="bench-failover-push")
    finally:
        plane.stop_all()


def percentiles(values: list[float]) -> dict[str, float]:
    """Median, p99 (nearest rank) and worst."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"median": statistics.median(ordered), "p99": p99, "worst": ordered[-1]}


def _detection(samples: list[dict[str, float]]) -> dict[str, float]:
    """Median, p99 and worst of FAILED → the worker noticed."""
    return {**percentiles([s["detection"] for s in samples]),
            "total_median": statistics.median(s["total"] for s in samples)}


if __name__ == "__main__":
    main()
