"""The states Flink reports for a job, as one typed value (no I/O: the decision core reads it).

A state Flink adds in a later version is kept as UNKNOWN, which the worker treats as an attempt
that exists and is not RUNNING: watched, never restarted for it.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    INITIALIZING = "INITIALIZING"
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    FAILING = "FAILING"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELED = "CANCELED"
    FINISHED = "FINISHED"
    RESTARTING = "RESTARTING"
    SUSPENDED = "SUSPENDED"
    RECONCILING = "RECONCILING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, text: str) -> JobState:
        try:
            return cls(text.upper())
        except ValueError:
            return cls.UNKNOWN

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def starting(self) -> bool:
        """A new attempt on its way to RUNNING."""
        return self in (JobState.INITIALIZING, JobState.CREATED)


TERMINAL_STATES = frozenset({JobState.FAILED, JobState.CANCELED, JobState.FINISHED})
