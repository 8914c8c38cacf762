"""What one supervisor cycle saw: an immutable value the decision function reads.

Everything here was read before the decision (from ZooKeeper, from Flink, from disk, from the
clock) and checked on the way in; nothing here reads anything. Fields a cycle reads only
when needed (restore points, Flink's restart count, checkpoint statistics) are None when they
were not read this cycle; the decision asks for restore points with a `Gather` decision.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from common.flink.jobstate import JobState
from common.store.records import Checkpoint, JobRecord, JobStatus, Phase, StableSpec


class Need(enum.Enum):
    """Restore points a start needs gathered (with the attempts Flink lists, to number it)."""

    FIRST = "first"  # the very first attempt: the initial savepoint, else state left on disk
    AFTER = "after"  # the attempt after the current one: every source (DESIGN rule 5)
    NONE = "none"  # the point is known (a savepoint just taken, an operator's path)


@dataclass(frozen=True)
class Hold:
    """The job must not run: removed from the config, or suspended (spec or override)."""

    phase: Phase
    reason: str


@dataclass(frozen=True)
class RestartCommand:
    """An operator's `flinksched restart`, kept in ZooKeeper until carried out."""

    node: str
    by: str
    from_empty: bool = False
    from_path: str = ""
    path_problem: str | None = None  # why from_path cannot be restored from, checked on disk


@dataclass(frozen=True)
class RollbackRequest:
    """An operator's `flinksched rollback`, kept in ZooKeeper until carried out."""

    node: str
    by: str


@dataclass(frozen=True)
class RestoreCandidates:
    """Every candidate the sources know of, with what the check before use found wrong with
    each (rule 7); the decision chooses among them."""

    need: Need
    points: tuple[Checkpoint, ...]
    problems: Mapping[str, str] = field(default_factory=dict)  # path -> why unusable
    # Why the storage of the checkpoints could not be read ("": it was): no point is judged
    # then, and nothing starts until it answers.
    unreachable: str = ""
    # A checkpoint of the ended attempt Flink was still completing when it was asked (its
    # timestamp: the last acknowledgement, in ms): it may become the newest point.
    finalizing: Checkpoint | None = None


class SavepointState(enum.Enum):
    IN_PROGRESS = "in progress"
    COMPLETED = "completed"
    FAILED = "failed"
    LOST = "lost"  # the trigger could not be asked about (cluster gone, trigger forgotten)


@dataclass(frozen=True)
class StopProgress:
    """Where the stop-with-savepoint this supervisor triggered stands."""

    state: SavepointState
    detail: str = ""  # the savepoint's path when completed, else Flink's message


@dataclass(frozen=True)
class CheckpointStats:
    """Flink's checkpoint statistics of the attempt, as far as a restore needs them."""

    completed: tuple[Checkpoint, ...]  # externally addressable ones
    placeholder: bool  # Flink completed a checkpoint it cannot address


@dataclass(frozen=True)
class Pushed:
    """A status change Flink's listener pushed for the current attempt. It makes the cycle
    read the attempt's state from Flink's REST API at once; the REST state is what decides."""

    state: JobState
    cause: str = ""  # first line of the root exception, for people (never classified)
    waited: float = 0.0  # seconds since it arrived

    def confirmed_by(self, state: JobState | None) -> bool:
        """REST shows the pushed state, or has moved past it (ended, or forgot the attempt)."""
        return state is None or state is self.state or state.terminal


@dataclass(frozen=True)
class FlinkView:
    """The attempt as Flink shows it. `state` None: the cluster does not know the attempt."""

    state: JobState | None = None
    unreachable: str = ""  # why the cluster could not be asked; state is meaningless then
    root_cause: str = ""  # of a FAILED attempt ("" while Flink has not reported it)
    listed: Mapping[str, str] | None = None  # job id -> state of this job's listed attempts
    restart_count: int | None = None  # Flink's restarts of the attempt, when read this cycle
    checkpoints: CheckpointStats | None = None  # when read this cycle
    previous_cause: str = ""  # root cause of the previous attempt, when it was still pending
    pushed: Pushed | None = None  # a push about the attempt, arrived since the last cycle


@dataclass(frozen=True)
class Clock:
    wall: float  # seconds since the epoch: status times, restart windows
    mono: float  # monotonic: this process's own timers


@dataclass(frozen=True)
class Memory:
    """What this supervisor remembers between cycles that ZooKeeper does not hold."""

    stop_trigger: str = ""  # a stop-with-savepoint in flight
    upgrade_retry_at: float = 0.0  # monotonic: a failed stop-with-savepoint is retried then
    held_recheck_due: bool = False  # a NoRestorePoint job looks for a usable point again
    cancel_sent: tuple[str, float] = ("", 0.0)  # job id, monotonic time this worker cancelled


@dataclass(frozen=True)
class Observation:
    owner: str  # this worker
    record: JobRecord
    status: JobStatus
    clock: Clock
    flink: FlinkView = FlinkView()
    hold: Hold | None = None
    command: RestartCommand | None = None
    restore: RestoreCandidates | None = None
    stop: StopProgress | None = None  # None: no stop-with-savepoint in flight
    memory: Memory = Memory()
    submit_rejection: str = ""  # Flink refused the run request of the claimed attempt
    stable: StableSpec | None = None  # the job's last stable generation, once there is one
    rollback_request: RollbackRequest | None = None

    def with_restore(self, restore: RestoreCandidates, listed: Mapping[str, str]) -> Observation:
        return replace(self, restore=restore, flink=replace(self.flink, listed=listed))

    def after_rejection(self, status: JobStatus, reason: str) -> Observation:
        """The same cycle, after Flink refused the submission the last decision made."""
        return replace(self, status=status, submit_rejection=reason, restore=None,
                       command=None, rollback_request=None)
