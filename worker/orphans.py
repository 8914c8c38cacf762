"""Orphans: running Flink jobs of this flinksched job that are not its current attempt.

Matched on job ids, never on names: a program's env.execute("name") overrides the name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from common.flink import TERMINAL_STATES
from common.jobids import attempt_of, name_prefix


def orphan_ids(jobs: Iterable[dict[str, Any]], name: str, current_attempt: int) -> list[str]:
    found = []
    prefix = name_prefix(name)  # a hash: once per call, not once per listed job
    for job in jobs:
        job_id = str(job.get("id", "")).lower()
        if not job_id.startswith(prefix):
            continue
        attempt = attempt_of(name, job_id)
        if attempt is None or attempt == current_attempt:
            continue
        if str(job.get("status", "")) not in TERMINAL_STATES:
            found.append(job_id)
    return sorted(found)
