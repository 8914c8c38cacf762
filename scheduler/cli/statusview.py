"""What `flinksched status` shows: the fleet's rows (`common.telemetry.fleet`) as a table."""

from __future__ import annotations

import time
from typing import Any

import click

from common.durations import format_duration
from common.store.records import RUNNING_PHASES
from common.telemetry.fleet import ALARMING, PHASE_COLOR, checkpoint_age, full_reason


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
            full_reason(row)[:100],
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
