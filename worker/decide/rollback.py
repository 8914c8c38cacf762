"""Rolling a broken upgrade back: pure, like `worker.decide.rules`, which calls these.

A generation is on trial from the upgrade that replaced the last stable generation's attempt
until its own attempt proves stable (`stable_now`): RUNNING for `stableAfter`, with a
completed checkpoint of its own where the job checkpoints, and no failure. A trial whose
submission Flink refuses, whose attempt fails (or is restarted by Flink), or that is not
stable within `readinessTimeout`, is rolled back (`roll_back`): the status names the rollback
(the user's spec is never rewritten) and the supervisor runs the stable generation's spec
from then on (`StableSpec.as_record`) while the record is still that generation, so it is
not tried again; the next generation is an upgrade from the stable spec.

The stable spec restarts (`rollback_step`) from the restore point the upgrade started from
(`JobStatus.upgrade_point`: the savepoint taken then, or the stable attempt's newest
checkpoint), never from one the trial wrote; a stateless job from empty state. A rollback
whose own attempt fails before it is stable again is held in RollbackFailed: no ping-pong.
"""

from __future__ import annotations

from common.flink.jobstate import JobState
from common.store.records import (
    JobRecord,
    JobStatus,
    Phase,
    Rollback,
    RollbackTrigger,
    StableSpec,
)
from worker.decide.decisions import Cancel, Decision, Event, Gather, Nothing, StartKind, events
from worker.decide.observation import Need, Observation
from worker.decide.restore_rules import RestoreChoice, own_checkpoint
from worker.decide.steps import Start, cancel


def on_trial(obs: Observation, status: JobStatus) -> bool:
    """The attempt runs a generation newer than the last stable one, not proven yet, that
    its spec lets roll back."""
    stable = obs.stable
    rollback = status.rollback  # one of an earlier generation is over
    return (stable is not None and obs.hold is None
            and (rollback is None or rollback.from_generation != obs.record.generation)
            and obs.record.model.rolls_back
            and obs.record.generation > stable.generation
            and status.submit_hash == obs.record.submit_hash != stable.submit_hash
            and status.stable_attempt != status.attempt)


def timed_out(obs: Observation, status: JobStatus) -> bool:
    """The trial has had its readinessTimeout (from its upgrade's claim)."""
    timeout = obs.record.model.rollback.readinessTimeout
    return status.upgraded_at > 0 and obs.clock.wall - status.upgraded_at >= timeout


def unsettled(status: JobStatus) -> bool:
    """The rollback's attempts have not proven the stable spec again yet: a failure now is
    the rollback failing."""
    rollback = status.rollback
    return rollback is not None and rollback.attempt > 0 and (
        status.stable_attempt < rollback.attempt)


def pending(status: JobStatus, record: JobRecord) -> bool:
    """A rollback is decided and the stable spec's attempt not claimed yet: the record is the
    stable spec's by then (`StableSpec.as_record`), the attempt still the trial's."""
    rollback = status.rollback
    return (rollback is not None and rollback.attempt == 0
            and record.generation == rollback.to_generation
            and status.submit_hash != record.submit_hash)


def roll_back(obs: Observation, status: JobStatus, trigger: RollbackTrigger, cause: str,
              state: JobState | None, done_command: str = "") -> Decision:
    """Decide the rollback: the status names it; an attempt still alive is cancelled first.
    The next cycle runs the stable spec (`rollback_step`)."""
    stable = obs.stable
    assert stable is not None
    rollback = Rollback(obs.record.generation, stable.generation, trigger, cause[:1000],
                        obs.clock.wall)
    said = (Event(f"rolling back: {rollback.sentence}",
                  (("rollbackTrigger", str(trigger)), ("fromGeneration", rollback.from_generation),
                   ("toGeneration", rollback.to_generation))),)
    marked = status.with_changes(rollback=rollback, rollbacks=status.rollbacks + 1,
                                 reason=f"rolling back: {rollback.sentence}"[:1500],
                                 submit_pending=False,
                                 last_failure=cause if trigger is not RollbackTrigger.REQUESTED
                                 else status.last_failure)
    message = f"rolling back to generation {stable.generation}: {trigger}: {cause[:200]}"
    if state is not None and not state.terminal:
        why = f"rollback of generation {rollback.from_generation}"
        marked = marked.with_changes(stopping=why)
        return Decision(marked, Cancel(status.flink_job_id), message, said,
                        done_command=done_command)
    return Decision(marked, Nothing(), message, said, retry_in=0.0, done_command=done_command)


def rollback_step(obs: Observation, status: JobStatus,
                  state: JobState | None) -> Decision | Start:
    """The stable spec's first attempt: once the trial's attempt ended, from the restore point
    the upgrade started from (checked before use), or held where none survives."""
    rollback = status.rollback
    assert rollback is not None
    why = f"rollback of generation {rollback.from_generation}"
    if state is not None and not state.terminal:
        return cancel(obs, status, why)
    cause = f"{why} to generation {rollback.to_generation} ({rollback.trigger})"
    if obs.record.model.job.upgradeMode == "stateless":
        return Start(status, StartKind.ROLLBACK, cause, choice=RestoreChoice.of(None))
    point = status.upgrade_point
    if point is None:
        return held(obs, status, "no restore point of the stable generation is known (its "
                                 "upgrade started from empty state)")
    if obs.restore is None or obs.restore.need is not Need.AFTER or obs.flink.listed is None:
        return Decision(status, Gather(Need.AFTER), f"{why}: checking {point.path}")
    if obs.restore.unreachable:
        return Decision(status, Nothing(), f"{why} waits for the storage: "
                        f"{obs.restore.unreachable}", backoff=True)
    problem = obs.restore.problems.get(point.path) or next(
        (r.reason for r in status.rejected_restores if r.path == point.path), None)
    if problem is not None:
        return held(obs, status, f"the restore point the upgrade started from, {point.path}, "
                                 f"cannot be used: {problem}")
    return Start(status, StartKind.ROLLBACK, cause, choice=RestoreChoice.of(point))


def held(obs: Observation, status: JobStatus, problem: str,
         state: JobState | None = None) -> Decision:
    """RollbackFailed, with what resolves it; an attempt still alive is cancelled."""
    rollback = status.rollback
    assert rollback is not None
    name = obs.record.name
    reason = (f"{problem}; {rollback.sentence}. Held: push a fixed generation, or "
              f"`flinksched restart {name} --from PATH` (or --from-empty)")
    stopped = status.with_changes(phase=Phase.ROLLBACK_FAILED, reason=reason[:1500],
                                  submit_pending=False)
    noted = () if status.phase == Phase.ROLLBACK_FAILED else events(
        f"rollback to generation {rollback.to_generation} failed, job held: {problem}")
    if state is not None and not state.terminal:
        return Decision(stopped.with_changes(stopping="rollback failed"),
                        Cancel(status.flink_job_id), f"rollback failed: {problem[:200]}", noted)
    return Decision(stopped, Nothing(), f"rollback failed: {problem[:200]}", noted)


def failed_again(obs: Observation, status: JobStatus, cause: str,
                 state: JobState | None) -> Decision:
    """The rollback's own attempt failed before it proved the stable spec again."""
    return held(obs, status, f"the stable generation's attempt {status.attempt} failed too: "
                             f"{cause}", state)


def stable_now(obs: Observation, status: JobStatus) -> tuple[StableSpec | None, float | None]:
    """Whether the RUNNING attempt just proved its generation stable (the stable spec to
    record, None when there is nothing new to record), and else in how many seconds it
    could (None: not by waiting alone)."""
    now, record = obs.clock.wall, obs.record
    newer = obs.stable is None or obs.stable.generation != record.generation
    if status.stable_attempt == status.attempt:
        # Proven already: a later generation that changed nothing submitted is stable too.
        same = obs.stable is None or obs.stable.submit_hash == record.submit_hash
        if newer and same and status.rollback is None:
            return StableSpec.of(record, status.attempt, now), None
        return None, None
    if status.flink_restarts:
        return None, None  # Flink restarted it: not without failure
    ran = now - status.since
    wanted = record.model.rollback.stableAfter
    if ran < wanted:
        return None, wanted - ran
    if (record.model.checkpoint_interval is not None and status.checkpoints_durable
            and not own_checkpoint(status)):
        return None, None  # its first checkpoint wakes the supervisor's next look
    return StableSpec.of(record, status.attempt, now), None
