"""Deterministic Flink job ids: submissions are idempotent because the id names the attempt.

A Flink JobID is 32 hex digits. The upper 16 come from the flinksched job's name, the lower 16
are the attempt number, so any id seen in Flink tells which job and which attempt it belongs to.
"""

from __future__ import annotations

import hashlib
import re

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
NAME_PREFIX_LENGTH = 16  # hex digits of a job id that come from the job's name


def is_job_id(text: str) -> bool:
    """32 lower-case hex digits: a Flink job id (and the name of its checkpoint directory)."""
    return bool(_JOB_ID.match(text))


def name_prefix(name: str) -> str:
    """The upper half of every Flink job id of this job."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:NAME_PREFIX_LENGTH]


def flink_job_id(name: str, attempt: int) -> str:
    if attempt < 1:
        raise ValueError(f"attempts start at 1, got {attempt}")
    return f"{name_prefix(name)}{attempt:016x}"


def attempt_of(name: str, job_id: str) -> int | None:
    """The attempt a Flink job id stands for, or None when it is not one of this job's ids."""
    job_id = job_id.lower()
    if not _JOB_ID.match(job_id) or not job_id.startswith(name_prefix(name)):
        return None
    return int(job_id[NAME_PREFIX_LENGTH:], 16)
