"""What `flinksched status` shows: rows built from ZooKeeper, rendered as a table or JSON."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from common.durations import format_duration
from common.errors import StoreError
from common.records import CRASH_LOOP, RUNNING, SUBMIT_FAILED
from common.store import Store

PHASE_STYLE = {
    RUNNING: "green",
    CRASH_LOOP: "bold red",
    SUBMIT_FAILED: "bold red",
    "ClusterUnreachable": "red",
    "Recovering": "yellow",
    "Restarting": "yellow",
    "Submitting": "cyan",
    "Pending": "cyan",
}


def status_rows(store: Store) -> list[dict[str, Any]]:
    """One stable JSON-able row per job (the `-o json` contract)."""
    rows = []
    for name, record in store.jobs().items():
        try:
            status, _ = store.status(name)
        except StoreError as exc:
            rows.append({"name": name, "phase": "Unknown", "reason": str(exc)})
            continue
        owner = store.owner(name)
        checkpoint = status.last_checkpoint
        row: dict[str, Any] = {
            "name": name,
            "desiredState": record.spec.get("job", {}).get("state", "running"),
            "phase": status.phase,
            "flinkJobId": status.flink_job_id,
            "attempt": status.attempt,
            "worker": owner[0] if owner else "",
            "restarts": status.restarts,
            "since": status.since,
            "lastCheckpoint": checkpoint.to_json() if checkpoint else None,
            "generation": record.generation,
            "observedGeneration": status.observed_generation,
            "reason": status.reason if status.phase != RUNNING else "",
            "labels": record.labels,
            "cluster": record.cluster.get("metadata", {}).get("name", ""),
        }
        rows.append(row)
    return rows


def status_table(rows: list[dict[str, Any]], now: float | None = None) -> Table:
    now = time.time() if now is None else now
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "PHASE", "FLINK JOB ID", "ATTEMPT", "WORKER", "UPTIME",
                   "RESTARTS", "CHECKPOINT AGE", "REASON"):
        table.add_column(column, no_wrap=column != "REASON", overflow="fold")
    for row in rows:
        checkpoint = row.get("lastCheckpoint")
        age = format_duration(now - checkpoint["timestamp"] / 1000) if checkpoint else "-"
        since = row.get("since") or 0
        phase = row.get("phase", "")
        table.add_row(
            row["name"],
            f"[{PHASE_STYLE.get(phase, 'white')}]{phase}[/]",
            row.get("flinkJobId") or "-",
            str(row.get("attempt", 0)),
            row.get("worker") or "-",
            format_duration(now - since) if since and phase == RUNNING else "-",
            str(row.get("restarts", 0)),
            age,
            (row.get("reason") or "")[:80],
        )
    return table
