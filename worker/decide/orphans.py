"""Attempts of a flinksched job in Flink's listing: orphans (running, not the current attempt)
and attempts alive that ZooKeeper does not know (adopted after a lost or rolled-back status).

Matched on job ids, never on names: a program's env.execute("name") overrides the name.
"""

from __future__ import annotations

from collections.abc import Mapping

from common.flink.jobids import attempt_of
from common.flink.jobstate import TERMINAL_STATES


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


def live_attempt(attempts: Mapping[str, str], name: str,
                 current_attempt: int) -> tuple[int, str] | None:
    """The newest attempt Flink runs other than the status's: the status lost track of it
    (ZooKeeper lost or rolled back its data), and it is adopted, not restarted beside
    (DESIGN rules 3 and 7), whether it is newer or older than the status says."""
    found = []
    for job_id, state in attempts.items():
        attempt = attempt_of(name, job_id)
        if attempt is not None and attempt != current_attempt and state not in TERMINAL_STATES:
            found.append((attempt, job_id.lower()))
    return max(found, default=None)


def highest_attempt(attempts: Mapping[str, str], name: str) -> int:
    """The highest attempt number Flink lists for the job, whatever its state: a new attempt
    never reuses an id Flink still knows."""
    return max((a for a in (attempt_of(name, j) for j in attempts) if a is not None), default=0)
