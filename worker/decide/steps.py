"""The steps operators and new generations ask for: suspend or remove (stop with a savepoint,
then hold), upgrade by upgradeMode, restart on request. Pure, like `worker.decide.rules`, which
calls these and claims the attempt a step wants started (`Start`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from common.flink.jobstate import JobState
from common.spec.models import UpgradeMode
from common.store.records import RUNNING_PHASES, Checkpoint, JobRecord, JobStatus, Phase
from worker.decide.decisions import (
    Cancel,
    Decision,
    Event,
    Nothing,
    StartKind,
    StopPurpose,
    StopWithSavepoint,
    events,
)
from worker.decide.observation import Hold, Need, Observation, SavepointState
from worker.decide.restore_rules import RestoreChoice, checkpoint_number, location

CANCEL_RESEND = 5.0  # a cancelled attempt still alive this long after is cancelled again
UPGRADE_RETRY = 60.0  # after a failed stop-with-savepoint, the old attempt keeps running
# Flink refuses a savepoint while the attempt's tasks are still being deployed; that passes.
NOT_RUNNING_YET = ("Not all required tasks are currently running",
                   "is not being executed at the moment")


@dataclass(frozen=True)
class Start:
    """A step wants a new attempt: `worker.decide.rules` chooses its restore point (unless the step
    knows it), claims it and submits it."""

    status: JobStatus
    kind: StartKind
    cause: str
    need: Need | None = None
    choice: RestoreChoice | None = None
    events: tuple[Event, ...] = ()
    stop_cleared: bool = False
    done_command: str = ""


def desired_hold(record: JobRecord, override: Mapping[str, Any] | None) -> Hold | None:
    """The phase to hold the job in and why, or None when it should run. A job whose config is
    gone is removed; an operator's override wins over the spec until lifted."""
    if record.removed:
        return Hold(Phase.REMOVED, "removed from the config")
    if override and override.get("state") == "suspended":
        return Hold(Phase.SUSPENDED, f"suspended by {override.get('by', 'someone')}: "
                                     f"{override.get('reason', 'no reason given')}")
    if record.model.job.state == "suspended":
        return Hold(Phase.SUSPENDED, "suspended in the job spec")
    return None


def upgrade_due(record: JobRecord, status: JobStatus) -> bool:
    """The current attempt was submitted with another spec than the record's. An attempt that
    recorded no hash (started by an older flinksched) is upgraded on any new generation: a
    needless restart is better than a change silently not applied."""
    if not status.submit_hash:
        return record.generation > status.observed_generation
    return status.submit_hash != record.submit_hash


def hold(obs: Observation, status: JobStatus, state: JobState | None) -> Decision:
    """Removed or suspended: stop the attempt with a savepoint (kept for the resume), then hold."""
    assert obs.hold is not None
    phase, why = obs.hold.phase, obs.hold.reason
    dropped: tuple[Event, ...] = ()
    node = ""
    if obs.command is not None:
        node = obs.command.node
        dropped = events(f"ignored a restart request: the job is {phase.lower()}")
    stopping = bool(obs.memory.stop_trigger) or obs.stop is not None
    if not stopping and (state is None or state.terminal):
        held = status.with_changes(phase=phase, reason=why, stopping="", submit_pending=False,
                                   observed_generation=obs.record.generation)
        decision = Decision(held, Nothing(), f"{phase.lower()}: {why}")
    else:
        step = stop_step(obs, status, why, StopPurpose.HOLD)
        if isinstance(step, Decision):
            decision = step
        else:
            taken, stopped, noted = step
            held = stopped.with_changes(phase=phase, reason=why, submit_pending=False,
                                        observed_generation=obs.record.generation)
            decision = Decision(held, Nothing(), f"{phase.lower()} with savepoint {taken.path}",
                                noted, stop_cleared=True)
    return replace(decision, events=(*dropped, *decision.events), done_command=node)


def stop_step(obs: Observation, status: JobStatus, why: str, purpose: StopPurpose
               ) -> Decision | tuple[Checkpoint, JobStatus, tuple[Event, ...]]:
    """One step of stopping the attempt with a savepoint, across cycles: trigger, wait, then
    the savepoint taken (with the status recording it) or a decision saying it failed."""
    job_id = status.flink_job_id
    if obs.stop is None and not obs.memory.stop_trigger:
        return Decision(status.with_changes(stopping=why), StopWithSavepoint(job_id, purpose),
                        f"stopping attempt {status.attempt} with a savepoint",
                        events(f"stopping attempt {status.attempt} with a savepoint: {why}"))
    if obs.stop is None or obs.stop.state is SavepointState.IN_PROGRESS:
        return Decision(status, Nothing(),
                        f"stopping attempt {status.attempt}: savepoint in progress")
    if obs.stop.state is SavepointState.COMPLETED:
        path = obs.stop.detail
        taken = Checkpoint(path=path, id=len(status.savepoints) + 1,
                           timestamp=int(obs.clock.wall * 1000), kind="savepoint")
        stopped = status.with_changes(stopping="", last_checkpoint=taken,
                                      savepoints=(*status.savepoints, taken))
        return taken, stopped, events(
            f"attempt {status.attempt} stopped with savepoint {path} ({why})")
    if obs.stop.state is SavepointState.FAILED:
        message = f"stop with savepoint failed: {obs.stop.detail}"
        noted = events(f"stop with savepoint failed, attempt {status.attempt} keeps running: "
                       f"{obs.stop.detail}")
    else:
        message, noted = obs.stop.detail, ()
    failed = status.with_changes(stopping="", reason=message)
    if purpose is StopPurpose.HOLD:
        return Decision(failed, Nothing(), message, noted, stop_cleared=True)
    # Tasks still deploying pass in a moment; any other failure is retried later.
    wait = 1.0 if any(hint in message for hint in NOT_RUNNING_YET) else UPGRADE_RETRY
    return Decision(failed, Nothing(),
                    f"{message}; attempt {status.attempt} keeps running, retrying in {wait:g}s",
                    noted, stop_cleared=True, upgrade_retry_at=obs.clock.mono + wait)


def stop_through(obs: Observation, status: JobStatus) -> Decision | Start:
    """A stop-with-savepoint is in flight that nothing asks for any more (the job was resumed
    before its suspend completed): see it through, then run again from its savepoint."""
    why = status.stopping or "a stop with a savepoint"
    step = stop_step(obs, status, why, StopPurpose.HOLD)
    if isinstance(step, Decision):
        return step
    taken, stopped, noted = step
    return Start(stopped, StartKind.RESUME, f"resumed after {why}",
                 choice=RestoreChoice.of(taken), events=noted, stop_cleared=True)


class UpgradePath(enum.Enum):
    """How an upgrade can go now: the spec's upgradeMode as far as the attempt allows."""

    SAVEPOINT = "savepoint"  # stop with a savepoint, start the new generation from it
    LAST_STATE = "last-state"  # cancel, start from the newest checkpoint
    STATELESS = "stateless"  # cancel, start from empty state


def upgrade_path(mode: UpgradeMode, healthy: bool, stopping: bool) -> UpgradePath:
    """A savepoint of an attempt that is not healthy would fail or hang: such an upgrade falls
    back to the newest checkpoint (last-state). A stop with a savepoint already under way is
    seen through."""
    if mode == "stateless":
        return UpgradePath.STATELESS
    if mode == "savepoint" and (healthy or stopping):
        return UpgradePath.SAVEPOINT
    return UpgradePath.LAST_STATE


def upgrade(obs: Observation, status: JobStatus,
            state: JobState | None) -> Decision | Start | None:
    """One step of carrying the job to the record's generation along its `upgrade_path`; None
    when the upgrade waits (a failed savepoint is retried later) and the cycle goes on."""
    mode = obs.record.model.job.upgradeMode
    why = f"upgrade to generation {obs.record.generation} ({mode})"
    healthy = state is JobState.RUNNING and status.phase in RUNNING_PHASES
    stopping = bool(obs.memory.stop_trigger) or obs.stop is not None
    path = upgrade_path(mode, healthy, stopping)
    if path is UpgradePath.SAVEPOINT:
        if obs.clock.mono < obs.memory.upgrade_retry_at:
            return None
        step = stop_step(obs, status, why, StopPurpose.UPGRADE)
        if isinstance(step, Decision):
            return step
        taken, stopped, noted = step
        return Start(stopped, StartKind.UPGRADE, why, choice=RestoreChoice.of(taken),
                     events=noted, stop_cleared=True)
    if state is not None and not state.terminal:
        detail = "" if mode != "savepoint" else (
            f" from the newest checkpoint, the attempt being {state}")
        return cancel(obs, status, why, detail)
    if path is UpgradePath.STATELESS:
        return Start(status, StartKind.UPGRADE, why, choice=RestoreChoice.of(None))
    return Start(status, StartKind.UPGRADE, why, Need.AFTER)


def cancel(obs: Observation, status: JobStatus, why: str, detail: str = "") -> Decision:
    """Cancel the attempt before the next starts. A cancel this worker sent a moment ago is
    waited for; any other (the status says stopping, but this worker did not send it, or the
    request failed) is sent again: the status's word is not proof that Flink was asked."""
    message = f"cancelling attempt {status.attempt}: {why}"
    job_id, sent = obs.memory.cancel_sent
    if job_id == status.flink_job_id and obs.clock.mono - sent < CANCEL_RESEND:
        return Decision(status.with_changes(stopping=why), Nothing(), message)
    noted = () if status.stopping == why else events(message + detail)
    return Decision(status.with_changes(stopping=why), Cancel(status.flink_job_id), message,
                    noted)


def requested_restart(obs: Observation, status: JobStatus,
                      state: JobState | None) -> Decision | Start:
    """An operator's restart: terminate attempt N first, then start N+1."""
    command = obs.command
    assert command is not None
    path = command.from_path
    reason = f"restart requested by {command.by}" + (
        " from empty state" if command.from_empty else f" from {path}" if path else "")
    if path and command.path_problem is not None:
        return Decision(status, Nothing(), f"refused a restart from {path}: {command.path_problem}",
                        events(f"refused a restart from {path} requested by {command.by}: "
                               f"{command.path_problem}"), done_command=command.node)
    if state is not None and not state.terminal:
        return cancel(obs, status, reason)
    if path:
        # The operator's word overrides an earlier rejection of the same point.
        status = status.with_changes(rejected_restores=tuple(
            r for r in status.rejected_restores if location(r.path) != location(path)))
        number = checkpoint_number(path)
        point = Checkpoint(path=path, id=number, timestamp=int(obs.clock.wall * 1000),
                           kind="checkpoint" if number else "savepoint")
        return Start(status, StartKind.REQUESTED, reason, choice=RestoreChoice.of(point),
                     done_command=command.node)
    if command.from_empty:
        return Start(status, StartKind.REQUESTED, reason, choice=RestoreChoice.of(None),
                     done_command=command.node)
    return Start(status, StartKind.REQUESTED, reason, Need.AFTER, done_command=command.node)

