"""Broken upgrades rolled back, on the real stack: for each kind of broken generation, the
time from its sync (the master writing generation 2 to ZooKeeper) to the stable spec's
attempt RUNNING (Flink's own timestamp), upgrades by savepoint.

The kinds are those of `tests/e2e/test_rollback.py`: an entry class that does not exist,
arguments the program rejects at start, a program that fails on every record, and state that
does not fit (a changed operator uid). Generation 1 is proven stable first (after 3 s
RUNNING with a checkpoint: the spec's stableAfter).

    python -m bench.rollback --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.failover import flink_timestamp
from bench.stackutil import exit_on_sigterm, local_devstack, write_results, zk_store
from common.store.records import Phase
from common.store.zookeeper import Store
from scheduler.devstack.flinkhome import FLINK_VERSION
from tests.stack import Cluster, ControlPlane
from tests.waiting import wait_until

ROLLBACK = {"stableAfter": "3s", "readinessTimeout": "60s"}
KINDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "entry class missing": ({}, {"entry_class": "dev.flinksched.examples.NoSuchJob"}),
    "arguments rejected": ({}, {"args": ["--keys", "many"]}),
    "fails on every record": ({}, {"args": ["--fail-always-marker", "MARKER"]}),
    "state does not fit": ({"args": ["--operator-uid", "counter-a"]},
                           {"args": ["--operator-uid", "counter-b"]}),
}
SYNC_POLL = 0.01  # how finely the sync's moment is caught


def rolled_back(control: ControlPlane, cluster: Cluster, store: Store, name: str,
                first: dict[str, Any], broken: dict[str, Any]) -> dict[str, Any]:
    """One broken upgrade: seconds from its sync to RUNNING on the stable spec, and how."""
    control.write_job(name, rollback=ROLLBACK, **first)
    wait_until(lambda: store.status(name)[0].stable_attempt == 1 and (
        store.status(name)[0].phase == Phase.RUNNING), 120, f"{name} stable")
    control.write_job(name, rollback=ROLLBACK, **broken)
    record = wait_until(lambda: (r := store.job(name)) is not None and r.generation == 2 and r,
                        60, f"{name} generation 2 synced", interval=SYNC_POLL)
    synced = time.time()
    assert record

    def back() -> Any:
        status = store.status(name)[0]
        rollback = status.rollback
        return status if (status.phase == Phase.ROLLED_BACK and rollback is not None
                          and rollback.attempt == status.attempt) else None

    try:
        status = wait_until(back, 120, f"{name} rolled back")
    except AssertionError as exc:
        return {"seconds": None, "trigger": "", "error": str(exc)[:300]}
    running = flink_timestamp(cluster, status.flink_job_id, "RUNNING")
    assert status.rollback is not None
    return {"seconds": running - synced, "trigger": str(status.rollback.trigger),
            "restored_from_upgrade_savepoint": bool(
                status.upgrade_point and status.restored_from == status.upgrade_point.path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="rollbacks of each kind")
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs and state")
    args = parser.parse_args()
    exit_on_sigterm()
    report: dict[str, Any] = {"flink": FLINK_VERSION, "runs": args.runs, "kinds": {}}
    with local_devstack(keep=args.keep) as (_, cluster, control):
        marker = Path(control.workdir) / "fail-always"
        marker.touch()
        control.start_master()
        control.start_worker(slots=len(KINDS) * args.runs)
        with zk_store(cluster.zk_hosts, control.root) as store:
            for number, (kind, (first, broken)) in enumerate(KINDS.items()):
                runs = []
                for run in range(args.runs):
                    broken_args = [str(marker) if a == "MARKER" else a
                                   for a in broken.get("args", [])]
                    pushed = {**broken, **({"args": broken_args} if broken_args else {})}
                    name = f"bench-rb-{number}-{run}"
                    runs.append(rolled_back(control, cluster, store, name, first, pushed))
                    # Suspended (a savepoint, the task slot freed) before the next one.
                    control.write_job(name, rollback=ROLLBACK, state="suspended", **first)
                    wait_until(lambda n=name: store.status(n)[0].phase == Phase.SUSPENDED,  # type: ignore[misc]
                               120, f"{name} suspended")
                done = [r["seconds"] for r in runs if r["seconds"] is not None]
                report["kinds"][kind] = {
                    "median_s": statistics.median(done) if done else None,
                    "worst_s": max(done) if done else None,
                    "finished": len(done), "runs": runs}
                print(f"{kind}: sync -> RUNNING on the stable spec, median "
                      f"{report['kinds'][kind]['median_s']} s over {len(done)} of {args.runs}",
                      flush=True)
    write_results("rollback", report)


if __name__ == "__main__":
    main()
