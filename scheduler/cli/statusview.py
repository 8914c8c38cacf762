"""What `flinksched status` shows: rows built from ZooKeeper, rendered as a table or JSON.

The JSON row is a documented contract (docs/cli.md): scripts depend on its field names.
"""

from __future__ import annotations

import time
from typing import Any

import click

from common.durations import format_duration
from common.spec.deployments import Deployment
from common.store.records import RUNNING_PHASES, Phase
from common.store.supervision import shown
from common.store.zookeeper import Store

PHASE_COLOR: dict[str, str] = {  # by Phase (a StrEnum: its value is the table cell)
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


def status_rows(store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """One stable JSON-able row per job, from a few pipelined rounds of ZooKeeper reads. A
    status is shown as it is only while its writer owns the job (`common.store.supervision`)."""
    now = time.time() if now is None else now
    records = store.jobs()
    names = sorted(records)
    statuses = store.statuses(names)
    owners = store.owners(names)
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


def _reason(row: dict[str, Any]) -> str:
    reason = str(row.get("reason") or "")
    if row.get("configError"):
        held = f"config invalid, kept generation {row['generation']}: {row['configError']}"
        reason = f"{reason}; {held}" if reason else held
    return reason


def checkpoint_age(row: dict[str, Any], now: float) -> str:
    if not row.get("checkpointsDurable", True):
        return "not durable"
    checkpoint = row.get("lastCheckpoint")
    return format_duration(now - checkpoint["timestamp"] / 1000) if checkpoint else "-"


def render_table(rows: list[dict[str, Any]], now: float | None = None, wide: bool = False,
                 color: bool = False) -> str:
    """Aligned plain-text columns (fast for thousands of rows); phases coloured on a tty."""
    now = time.time() if now is None else now
    header = ["NAME", "DESIRED", "PHASE", "FLINK JOB ID", "ATTEMPT", "WORKER", "UPTIME",
              "RESTARTS", "CHECKPOINT AGE", "GEN", "REASON"]
    if wide:
        header[-1:-1] = ["CLUSTER", "LABELS", "SOURCE"]
    table = [header]
    for row in rows:
        since = row.get("since") or 0
        phase = row.get("phase", "")
        cells = [
            row["name"],
            row["desiredState"] + (" (override)" if row.get("override") else ""),
            phase,
            row.get("flinkJobId") or "-",
            str(row.get("attempt", 0)),
            row.get("worker") or "-",
            format_duration(now - since) if since and phase in RUNNING_PHASES else "-",
            f"{row['restartsLastHour']}/{row['restarts']}",
            checkpoint_age(row, now),
            f"{row['observedGeneration']}/{row['generation']}",
            _reason(row)[:100],
        ]
        if wide:
            labels = ",".join(f"{k}={v}" for k, v in sorted(row["labels"].items()))
            cluster = row["cluster"] + (f" (own: {row.get('clusterUrl') or 'none running'})"
                                        if row.get("ownCluster") else "")
            cells[-1:-1] = [cluster, labels or "-", row["source"]]
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = []
    for number, line in enumerate(table):
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(line)]
        if color and number > 0:
            padded[2] = click.style(padded[2], fg=PHASE_COLOR.get(line[2], "white"),
                                    bold=line[2] in ALARMING)
        elif color:
            padded = [click.style(cell, bold=True) for cell in padded]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
