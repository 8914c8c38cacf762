"""Orphans: running Flink jobs of this flinksched job that are not its current attempt.

Matched on job ids, never on names: a program's env.execute("name") overrides the name.
"""

from __future__ import annotations

from collections.abc import Mapping

from common.flink import TERMINAL_STATES
from common.jobids import attempt_of


def orphan_ids(attempts: Mapping[str, str], name: str, current_attempt: int) -> list[str]:
    """`attempts`: Flink job id -> state of the listed jobs whose ids carry this job's name
    (`ClusterStates.listed_attempts`)."""
    found = []
    for job_id, state in attempts.items():
        attempt = attempt_of(name, job_id)
        if attempt is None or attempt == current_attempt:
            continue
        if state not in TERMINAL_STATES:
            found.append(job_id.lower())
    return sorted(found)
