"""What a supervisor cycle decided: typed values, each with its sentence for people.

A `Decision` is the status to record (written only when it changed), one action to carry out
against Flink, the events to append, and how soon to look again. Code branches on the types
and enums here; the sentences are for logs, events and tests' messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from common.store.records import Checkpoint, JobStatus, StableSpec
from worker.decide.observation import Need


class StartKind(enum.Enum):
    """Why a new attempt starts, which decides what it counts against."""

    FIRST = "first"
    FAILURE = "failure"  # counts against the restart policy
    LOST = "lost"  # the cluster lost the attempt: a restart that does not count
    REJECTED = "rejected"  # Flink could not read the restore point: does not count either
    RECOVERED = "recovered"  # a held job's restore point became usable
    REQUESTED = "requested"  # an operator's restart
    RESUME = "resume"
    UPGRADE = "upgrade"  # a new generation: the restart policy's budget starts afresh
    ROLLBACK = "rollback"  # the last stable generation again, after a broken upgrade

    @property
    def is_restart(self) -> bool:
        return self in (StartKind.FAILURE, StartKind.LOST, StartKind.REJECTED,
                        StartKind.RECOVERED, StartKind.REQUESTED, StartKind.ROLLBACK)

    @property
    def after_failure(self) -> bool:
        """The start's cause becomes the status's last failure."""
        return self in (StartKind.FAILURE, StartKind.LOST, StartKind.REJECTED,
                        StartKind.RECOVERED, StartKind.ROLLBACK)

    @property
    def fresh_budget(self) -> bool:
        """Another generation runs: the restart policy's budget starts afresh."""
        return self in (StartKind.UPGRADE, StartKind.ROLLBACK)

    @property
    def verb(self) -> str:
        return {StartKind.FIRST: "started", StartKind.RESUME: "resumed",
                StartKind.UPGRADE: "started", StartKind.ROLLBACK: "started"}.get(self, "restarted")


class StopPurpose(enum.Enum):
    UPGRADE = "upgrade"  # then start the new generation from the savepoint
    HOLD = "hold"  # then hold the job (suspend, removal), the savepoint kept for the resume


# -- actions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Nothing:
    """Only the status (if it changed) and the events."""


@dataclass(frozen=True)
class BackOff:
    """The restart policy's backoff: the next attempt starts at `until` (seconds since the
    epoch), unless the job changes before."""

    until: float


@dataclass(frozen=True)
class Gather:
    """Read the restore points (and the attempts Flink lists), then decide again."""

    need: Need


@dataclass(frozen=True)
class Adopt:
    """Flink runs an attempt the status did not know: its checkpoints and restarts are read
    at once."""

    job_id: str


@dataclass(frozen=True)
class Submit:
    """Submit the attempt the decision's status claims (written first, compare-and-set)."""

    kind: StartKind
    restore: Checkpoint | None


@dataclass(frozen=True)
class Resubmit:
    """Submit the claimed attempt again: whether Flink accepted it is unknown."""


@dataclass(frozen=True)
class Cancel:
    job_id: str


@dataclass(frozen=True)
class StopWithSavepoint:
    job_id: str
    purpose: StopPurpose


@dataclass(frozen=True)
class Watch:
    """The attempt runs: take requested or scheduled savepoints, note the recovery time."""

    job_id: str


Action = Nothing | BackOff | Gather | Adopt | Submit | Resubmit | Cancel | StopWithSavepoint | Watch


@dataclass(frozen=True)
class Event:
    message: str
    extra: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Decision:
    status: JobStatus
    action: Action
    message: str
    events: tuple[Event, ...] = ()
    backoff: bool = False  # the cluster is unreachable: wait longer each time
    orphans: tuple[str, ...] = ()  # attempts to cancel besides the action
    done_command: str = ""  # command node to delete once the action is carried out
    stop_cleared: bool = False  # forget the stop-with-savepoint in flight
    upgrade_retry_at: float | None = None  # monotonic; set when a stop failed
    held_rechecked: bool = False  # the held job just looked for a restore point
    failure_seen: bool = False  # an outage starts now (recovery time is measured from here)
    recheck: bool = False  # Flink pushed a state its REST API does not show yet: look again soon
    retry_in: float | None = None  # seconds: look again this soon (a checkpoint is completing)
    # The attempt ended and nothing starts another now: tear down what is left of the job's
    # own clusters (a session cluster has nothing of the job's to release).
    release: bool = False
    # The attempt proved its generation stable: record it as the job's last stable one
    # (before the status, which then names the attempt).
    stable: StableSpec | None = None
    wake_in: float | None = None  # seconds: a timer runs out then (no news to keep)


def events(*messages: str) -> tuple[Event, ...]:
    return tuple(Event(m) for m in messages if m)


@dataclass(frozen=True)
class Outcome:
    """What carrying a decision out came to, for the supervisor's loop."""

    message: str
    backoff: bool = False  # the cluster turned out unreachable
    quiet: bool = False  # submitted: the shared listing wakes the supervisor when it shows
    rejected: str = ""  # Flink refused the submission: decide again with this reason
    soon: bool = False  # look again within PUSH_RECHECK: a pushed state awaits confirmation
    retry_in: float | None = None  # seconds: look again no later than this
    wake_in: float | None = None  # seconds: a timer of the decision's runs out then
