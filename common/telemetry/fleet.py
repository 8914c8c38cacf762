"""Every job as one row: what `flinksched status` prints and the portal's fleet page shows,
built from ZooKeeper in a few pipelined rounds of reads.

The JSON row is a documented contract (docs/cli.md): scripts depend on its field names.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from common.durations import format_duration
from common.spec.deployments import Deployment
from common.store.records import JobRecord, JobStatus, Phase
from common.store.supervision import shown
from common.store.zookeeper import Store


class FleetCaches(Protocol):
    """Copies of every job's record, status and owner, read anew only where they changed."""

    def records(self, names: list[str]) -> dict[str, JobRecord]: ...
    def statuses(self, names: list[str]) -> dict[str, JobStatus]: ...
    def owners(self, names: list[str]) -> dict[str, str]: ...

# A colour for each phase (a StrEnum: its value is the table cell): the terminal's names, which
# the portal's style sheet names its classes after.
PHASE_COLOR: dict[str, str] = {
    Phase.RUNNING: "green",
    Phase.ROLLED_BACK: "yellow",
    Phase.ROLLBACK_FAILED: "red",
    Phase.SUSPENDED: "blue",
    Phase.CRASH_LOOP: "red",
    Phase.SUBMIT_FAILED: "red",
    Phase.NO_RESTORE_POINT: "red",
    Phase.RESTORE_INCOMPATIBLE: "red",
    Phase.CLUSTER_UNREACHABLE: "red",
    Phase.STORAGE_UNREACHABLE: "red",
    Phase.RECOVERING: "yellow",
    Phase.RESTARTING: "yellow",
    Phase.SUBMITTING: "cyan",
    Phase.PENDING: "cyan",
    Phase.REMOVED: "magenta",
    Phase.UNSUPERVISED: "red",
}
ALARMING = (Phase.CRASH_LOOP, Phase.SUBMIT_FAILED, Phase.NO_RESTORE_POINT,
            Phase.RESTORE_INCOMPATIBLE, Phase.UNSUPERVISED)


def status_rows(store: Store, now: float | None = None,
                cached: FleetCaches | None = None) -> list[dict[str, Any]]:
    """One stable JSON-able row per job, from a few pipelined rounds of ZooKeeper reads (or,
    with `cached`, from copies kept fresh by watches: then a handful of reads). A status is
    shown as it is only while its writer owns the job (`common.store.supervision`)."""
    now = time.time() if now is None else now
    if cached is None:
        records = store.jobs()
        names = sorted(records)
        statuses = store.statuses(names)
        owners = store.owners(names)
    else:
        listed = store.job_names()
        records = cached.records(listed)
        names = sorted(records)
        statuses = cached.statuses(names)
        owners = cached.owners(names)
    alive = store.worker_ids()
    overrides = store.overrides()
    config_errors = store.config_state().get("jobErrors", {})
    rows = []
    for name in names:
        record = records[name]
        status = statuses.get(name)
        override = overrides.get(name)
        desired = record.desired_state
        if override and override.get("state"):
            desired = str(override["state"])
        checkpoint = status.last_checkpoint if status else None
        seen = (shown(status, owners.get(name), None, status.worker in alive, 0.0)
                if status else None)
        rows.append({
            "name": name,
            "desiredState": desired,
            "override": override,
            "phase": seen.phase if seen else "Unknown",
            # What the status itself says, current or not (`phase` says what is known).
            "reportedPhase": status.phase if status else "Unknown",
            "supervised": seen.supervised if seen else False,
            "flinkJobId": status.flink_job_id if status else "",
            "attempt": status.attempt if status else 0,
            "worker": owners.get(name, ""),
            "since": status.since if status else 0.0,
            "restarts": status.restarts if status else 0,
            "restartsLastHour": sum(1 for t in (status.restart_times if status else ())
                                    if now - t < 3600),
            "lastCheckpoint": checkpoint.to_json() if checkpoint else None,
            # False: Flink keeps its checkpoints only in memory; a restart cannot use them.
            "checkpointsDurable": status.checkpoints_durable if status else True,
            "rejectedRestores": [r.to_json() for r in status.rejected_restores] if status else [],
            "generation": record.generation,
            "observedGeneration": status.observed_generation if status else 0,
            "reason": (seen.reason if seen and seen.phase != Phase.RUNNING else "")
            or ("unreadable status" if status is None else ""),
            "labels": record.labels,
            "cluster": record.cluster.get("metadata", {}).get("name", ""),
            # Where it runs: on a session cluster, or on a cluster of its own (application
            # mode), and where that cluster's UI is.
            "deployment": record.deployment.value,
            "ownCluster": record.deployment is Deployment.APPLICATION,
            "clusterUrl": status.cluster_url if status else "",
            "source": record.source,
            "commit": record.commit,
            "removedAt": record.removed_at or None,
            # The job's config file has a problem: it keeps running on its last valid spec.
            "configError": str(config_errors.get(name, "")),
        })
    return rows


def select(rows: list[dict[str, Any]], labels: tuple[str, ...], phase: str | None,
           cluster: str | None) -> list[dict[str, Any]]:
    wanted = dict(label.split("=", 1) for label in labels)
    return [row for row in rows
            if all(row["labels"].get(k) == v for k, v in wanted.items())
            and (phase is None or row["phase"].lower() == phase.lower())
            and (cluster is None or row["cluster"] == cluster)]


def checkpoint_age(row: dict[str, Any], now: float) -> str:
    if not row.get("checkpointsDurable", True):
        return "not durable"
    checkpoint = row.get("lastCheckpoint")
    return format_duration(now - checkpoint["timestamp"] / 1000) if checkpoint else "-"


def full_reason(row: dict[str, Any]) -> str:
    """Why the job is where it is, with its config's problem when it has one."""
    reason = str(row.get("reason") or "")
    if row.get("configError"):
        held = f"config invalid, kept generation {row['generation']}: {row['configError']}"
        reason = f"{reason}; {held}" if reason else held
    return reason
