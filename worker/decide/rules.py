"""When a job (re)starts, and from which restore point: one pure function of what a cycle saw.

`decide(observation) -> Decision`. No I/O, no clock, no randomness: the same observation always
gives the same decision, so every case is a unit test. The restore point itself is chosen by
`worker.restorecheck.choose` among the candidates the observation carries; these two modules
are the whole answer to "when does a job restart, and from which checkpoint".

In order, a cycle's decision is:
 1. A submission Flink just refused: a restore point it cannot read is rejected and the
    next-newest tried at once; state that does not fit the program holds the job; anything
    else is SubmitFailed (the restart policy takes it from there).
 2. Never started: adopt an attempt Flink runs (ZooKeeper lost its data), hold, or start from
    the initial savepoint or state an earlier life left on disk.
 3. Cluster unreachable: say so and back off; nothing else can be known.
 4. The attempt is gone or ended and Flink runs another one: adopt it, never start beside it.
 5. Removed or suspended: stop with a savepoint, then hold (`operator_steps.hold`); wanted
    again once the attempt ended: resume from the newest restore point.
 6. A new generation that changes what the attempt was submitted with: upgrade by its
    upgradeMode (`operator_steps.upgrade`); one that does not is recorded as applied. A stop
    with a savepoint nothing asks for any more is seen through, and the job resumes from it.
 7. An operator's restart (`operator_steps.requested_restart`): cancel, then start from the
    path, empty state, or the newest restore point.
 8. The attempt is gone: resubmit a claim Flink may not have seen, or start again from the
    newest restore point without counting it (the cluster lost it, the job did not fail).
 9. FAILED: classify Flink's root cause (restorecheck.classify_failure); CANCELED outside
    flinksched is a failure too. A failure goes through the restart policy: crash loop past
    maxRestarts in the window, back off while the backoff lasts, else restart from the newest
    usable restore point (restorecheck.choose over every source's candidates).
10. Alive: cancel orphans, count Flink's own restarts against the policy, and record RUNNING
    with its newest checkpoint.
A start with candidates but none usable holds the job in NoRestorePoint, never empty state.

A generation on trial (`worker.decide.rollback`) that Flink refuses (1), whose attempt fails
(9) or that Flink restarts or that runs out of time (10) is rolled back instead; the rollback
decided, the stable spec's attempt starts before anything else is considered (after 4, before
adoption: a listing of a moment ago may still show the attempt the upgrade stopped). A
RUNNING attempt that proves its generation stable records it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from common.flink.jobids import attempt_of, flink_job_id
from common.flink.jobstate import JobState
from common.store.records import (
    HELD_PHASES,
    Checkpoint,
    JobStatus,
    Phase,
    RejectedRestore,
    RollbackTrigger,
)
from worker.decide.decisions import (
    Adopt,
    BackOff,
    Cancel,
    Decision,
    Event,
    Gather,
    Nothing,
    Resubmit,
    StartKind,
    Submit,
    Watch,
    events,
)
from worker.decide.observation import Need, Observation
from worker.decide.orphans import highest_attempt, live_attempt, orphan_ids
from worker.decide.policy import backoff_delay, recent_restarts
from worker.decide.restore_rules import (
    INCOMPATIBLE_HINT,
    FailureClass,
    RestoreChoice,
    checkpoint_number,
    choose,
    classify_failure,
    newest,
    no_restore_point_reason,
)
from worker.decide.rollback import (
    failed_again,
    on_trial,
    pending,
    roll_back,
    rollback_step,
    stable_now,
    timed_out,
    unsettled,
)
from worker.decide.steps import (
    Start,
    hold,
    requested_restart,
    stop_through,
    upgrade,
    upgrade_due,
)

# An attempt that ended during a checkpoint's completion: the restart waits for it this long.
FINALIZE_WAIT = 10.0
FINALIZE_RECHECK = 0.2
ROOT_CAUSE_PENDING = "root exception not reported by Flink yet"
NON_DURABLE = ("its checkpoints are kept only in the JobManager's memory (the cluster has no "
               "execution.checkpointing.dir) and it has no usable savepoint")


def decide(obs: Observation) -> Decision:
    decision = _decide(obs)
    if _rests(obs, decision):
        decision = replace(decision, release=True)
    return decision


def _rests(obs: Observation, decision: Decision) -> bool:
    """The attempt has ended (or is gone) and the decision starts no other one."""
    state = obs.flink.state
    return (not obs.flink.unreachable and (state is None or state.terminal)
            and isinstance(decision.action, Nothing | BackOff))


def _decide(obs: Observation) -> Decision:
    status = obs.status
    if status.worker != obs.owner:  # taken over: the status says who owns it now
        status = status.with_changes(worker=obs.owner)
    if obs.submit_rejection:
        return _submission_refused(obs, status, obs.submit_rejection)
    if status.attempt == 0:
        return _not_started(obs, status)
    if obs.flink.unreachable:
        down = status.with_changes(phase=Phase.CLUSTER_UNREACHABLE,
                                   reason=obs.flink.unreachable[:300])
        return Decision(down, Nothing(), f"cluster unreachable: {obs.flink.unreachable}",
                        backoff=True)
    state = obs.flink.state
    ended = state is None or state.terminal
    # The way out a hold names (`flinksched restart --from PATH` or `--from-empty`) comes
    # before a rollback step or an upgrade that would only hold the job again.
    held_restart = obs.command is not None and obs.hold is None and status.phase in HELD_PHASES
    if ended and obs.hold is None and pending(status, obs.record) and not held_restart:
        # Before adopting an older attempt: the status was just written, and a listing of a
        # moment ago may still show the attempt the upgrade stopped with its savepoint as
        # running. A newer one alive is adopted (ZooKeeper lost or rolled back the status).
        live = live_attempt(obs.flink.listed or {}, obs.record.name, status.attempt)
        if live is None or live[0] < status.attempt:
            return _started(obs, rollback_step(obs, status, state))
    if ended:
        adopted = _adopt_live(obs, status)
        if adopted is not None:
            return adopted
    if obs.hold is not None:
        return hold(obs, status, state)
    if status.phase in (Phase.SUSPENDED, Phase.REMOVED) and ended:
        # (An attempt still alive is watched as it is: rule 3, never two alive.)
        return _start(obs, status, StartKind.RESUME, "resume", Need.AFTER)
    if held_restart:
        return _attempt(obs, status, state)
    if pending(status, obs.record):
        return _started(obs, rollback_step(obs, status, state))
    if obs.rollback_request is not None:
        return _requested_rollback(obs, status, state)
    if upgrade_due(obs.record, status):
        upgrading = upgrade(obs, status, state)
        if upgrading is not None:
            return _started(obs, upgrading)
    if obs.stop is not None or obs.memory.stop_trigger:
        return _started(obs, stop_through(obs, status))
    applied: tuple[Event, ...] = ()
    if obs.record.generation != status.observed_generation:
        ended_rollback = status.rollback
        status = status.with_changes(observed_generation=obs.record.generation, rollback=None)
        applied = events(f"generation {obs.record.generation} applied without a restart" + (
            f": it submits what generation {ended_rollback.to_generation} did; the rollback "
            f"from generation {ended_rollback.from_generation} ends" if ended_rollback else ""))
    decision = _attempt(obs, status, state)
    if applied:
        decision = replace(decision, events=(*applied, *decision.events))
    pushed = obs.flink.pushed
    if pushed is not None and not pushed.confirmed_by(state):
        decision = replace(decision, recheck=True, message=(
            f"{decision.message}; Flink pushed {pushed.state}, its REST API shows {state}: "
            "looking again"))
    return decision


def _attempt(obs: Observation, status: JobStatus, state: JobState | None) -> Decision:
    """Steps 7 to 10: the attempt as Flink shows it."""
    if obs.command is not None:
        return _started(obs, requested_restart(obs, _unreadable_noted(obs, status, state),
                                               state))
    if status.phase in HELD_PHASES and (state is None or state.terminal):
        return _held(obs, status)
    waiting = status.phase in (Phase.SUBMIT_FAILED, Phase.CRASH_LOOP, Phase.RECOVERING,
                               Phase.STORAGE_UNREACHABLE) and bool(status.last_failure)
    if state is None:
        if status.submit_pending and status.phase in (Phase.SUBMITTING,
                                                      Phase.CLUSTER_UNREACHABLE):
            return Decision(status, Resubmit(), "submitting the claimed attempt again")
        if waiting:
            return _restart(obs, status, status.last_failure)
        cause = (f"attempt {status.attempt} is missing from the cluster "
                 "(not counted against the restart policy)")
        return _start(obs, status, StartKind.LOST, cause, Need.AFTER)
    if state is JobState.FAILED:
        if waiting:
            return _restart(obs, status, status.last_failure)
        return _failed(obs, status)
    if state is JobState.CANCELED:
        return _restart(obs, status, status.stopping or "CANCELED outside flinksched")
    if state is JobState.FINISHED and status.stopping:
        # flinksched stopped it (with a savepoint) and the job is wanted running again.
        return _start(obs, status, StartKind.RESUME,
                      f"attempt {status.attempt} was stopped ({status.stopping})", Need.AFTER)
    if state is JobState.FINISHED:
        done = status.with_changes(phase=Phase.FINISHED, submit_pending=False,
                                   reason="job finished")
        return Decision(done, Nothing(), f"attempt {status.attempt} finished")
    return _alive(obs, status, state)


# -- starting an attempt ------------------------------------------------------------------------
def _start(obs: Observation, status: JobStatus, kind: StartKind, cause: str,
           need: Need | None = None, *, choice: RestoreChoice | None = None,
           recent: tuple[float, ...] = ()) -> Decision:
    """Claim the next attempt and submit it from the chosen restore point. Without a usable
    point among existing candidates the job is held in NoRestorePoint instead."""
    listed = obs.flink.listed
    if choice is None:
        assert need is not None
        if obs.restore is None or obs.restore.need is not need or listed is None:
            return Decision(status, Gather(need), f"gathering restore points ({need.value})")
        if obs.restore.unreachable:  # never an older point, or empty state, for want of it
            waiting = status.with_changes(phase=Phase.STORAGE_UNREACHABLE,
                                          reason=obs.restore.unreachable[:300],
                                          last_failure=cause if kind.after_failure
                                          else status.last_failure)
            said = () if status.phase == Phase.STORAGE_UNREACHABLE else events(
                f"not started after {cause}: {obs.restore.unreachable}; waiting for the storage")
            return Decision(waiting, Nothing(), f"not started after {cause}: "
                            f"{obs.restore.unreachable}", said, backoff=True)
        completing = _completing(obs)
        if completing is not None:
            return Decision(status, Nothing(), f"not started yet after {cause}: {completing}",
                            retry_in=FINALIZE_RECHECK)
        problems = obs.restore.problems
        choice = choose(obs.restore.points, status.rejected_paths, obs.clock.wall,
                        check=problems.get)
    elif listed is None:
        return Decision(status, Gather(Need.NONE), "reading the attempts Flink lists")
    passed = events(*(f"restore point {r.path} passed over: {r.reason}" for r in choice.rejected))
    if choice.exhausted and status.checkpoints_durable:
        reason = no_restore_point_reason(obs.record.name,
                                         (*status.rejected_restores, *choice.rejected))
        if status.phase != Phase.NO_RESTORE_POINT:
            passed = (*passed, Event(f"not restarted: {reason}"))
        stopped = status.with_changes(phase=Phase.NO_RESTORE_POINT, reason=reason,
                                      submit_pending=False, last_failure=cause)
        return Decision(stopped, Nothing(), f"no usable restore point after {cause}", passed,
                        held_rechecked=True)
    restore, now = choice.point, obs.clock.wall
    # A new attempt never reuses an id Flink still knows (a rolled-back status).
    attempt = max(status.attempt, highest_attempt(listed, obs.record.name)) + 1
    claimed = status.with_changes(
        phase=Phase.SUBMITTING,
        attempt=attempt,
        flink_job_id=flink_job_id(obs.record.name, attempt),
        observed_generation=obs.record.generation,
        submit_hash=obs.record.submit_hash,
        restored_from=restore.path if restore else "",
        submit_pending=True,
        cluster_url="",  # the new attempt's own cluster, once it is started
        stopping="",
        flink_restarts=0,
        since=now,
        reason=cause,
        worker=obs.owner,
        last_failure=cause if kind.after_failure else status.last_failure,
        restarts=status.restarts + (1 if kind.is_restart else 0),
        restart_times=(*recent, now) if kind is StartKind.FAILURE else (
            () if kind.fresh_budget else status.restart_times),
        last_checkpoint=newest([status.last_checkpoint, restore]),
        **_trial_fields(obs, status, kind, restore, attempt),
    )
    origin = restore.label if restore else "empty state"
    if restore is None and not status.checkpoints_durable:
        origin += f" ({NON_DURABLE})"
    elif restore is None and kind in (StartKind.FIRST, StartKind.FAILURE, StartKind.LOST):
        origin += " (no checkpoint or savepoint of this job exists yet)"
    sentence = f"{kind.verb} attempt {attempt} from {origin} after {cause}"
    if kind is StartKind.ROLLBACK:
        sentence = (f"started attempt {attempt} on generation {obs.record.generation}'s spec "
                    f"from {origin}: {cause}")
    # What the portal's restart timeline is drawn from: which attempt, why, from what state.
    extra: tuple[tuple[str, object], ...] = (("attempt", attempt), ("start", kind.value),
                                             ("restoredFrom", restore.path if restore else ""),
                                             ("claimedAt", now), ("cause", cause))
    if kind.after_failure:  # how the failure came to be known: pushed by Flink, or polled
        extra = (*extra, ("noticedBy", "push" if obs.flink.pushed is not None else "poll"))
    started = Event(sentence, extra)
    # A stop with a savepoint still in flight concerned an attempt this one supersedes.
    return Decision(claimed, Submit(kind, restore), sentence, (*passed, started),
                    failure_seen=kind.after_failure, stop_cleared=True)


def _trial_fields(obs: Observation, status: JobStatus, kind: StartKind,
                  restore: Checkpoint | None, attempt: int) -> dict[str, Any]:
    """What a claim records for rollbacks: an attempt that starts another program than the
    last one ran (an upgrade; a resume into a generation pushed while suspended) keeps the
    point it starts from (the state a rollback restores; one replacing a generation still on
    trial keeps the earlier one) and starts the trial, ending a rollback; the rollback's first
    attempt is named, and so is any other first attempt of the stable spec while the rollback
    holds (an operator's restart of a held rollback): the generation rolled back from is not
    tried again. A later restart of the stable spec's attempt leaves the rollback as it is."""
    rollback = status.rollback
    switching = status.submit_hash != obs.record.submit_hash
    if rollback is not None and (kind is StartKind.ROLLBACK or (
            switching and obs.record.generation == rollback.to_generation)):
        return {"rollback": replace(rollback, attempt=attempt)}
    if kind is StartKind.UPGRADE or (status.submit_hash
                                     and status.submit_hash != obs.record.submit_hash):
        stable = obs.stable
        from_stable = stable is None or status.submit_hash == stable.submit_hash
        return {"upgrade_point": restore if from_stable else status.upgrade_point,
                "upgraded_at": obs.clock.wall, "rollback": None}
    return {}


def _requested_rollback(obs: Observation, status: JobStatus,
                        state: JobState | None) -> Decision:
    """`flinksched rollback`: to the last stable generation, when the job runs another."""
    request = obs.rollback_request
    assert request is not None
    stable = obs.stable
    refusal = ""
    if stable is None:
        refusal = "no generation of this job has been stable yet"
    elif status.rollback is not None:
        refusal = f"it is rolled back to generation {status.rollback.to_generation} already"
    elif stable.submit_hash == obs.record.submit_hash:
        refusal = (f"generation {obs.record.generation} submits what the last stable "
                   f"generation ({stable.generation}) did")
    if refusal:
        return Decision(status, Nothing(), f"refused a rollback: {refusal}",
                        events(f"refused a rollback requested by {request.by}: {refusal}"),
                        done_command=request.node)
    return roll_back(obs, status, RollbackTrigger.REQUESTED, f"requested by {request.by}",
                     state, done_command=request.node)


def _completing(obs: Observation) -> str | None:
    """Why the choice waits: the attempt ended while Flink was completing a checkpoint that
    would be the newest point. It waits FINALIZE_WAIT at most from the checkpoint's last
    acknowledgement (one Flink aborts goes from in progress to failed at once)."""
    assert obs.restore is not None
    pending = obs.restore.finalizing
    state = obs.flink.state
    if pending is None or state is None or not state.terminal:
        return None
    if obs.clock.wall - pending.timestamp / 1000 >= FINALIZE_WAIT:
        return None
    own = f"/{obs.status.flink_job_id}/"
    if any(checkpoint_number(p.path) == pending.id and own in p.path
           and p.path not in obs.restore.problems for p in obs.restore.points):
        return None  # completed: its metadata is there (Flink's statistics lag behind)
    return f"checkpoint {pending.id} of attempt {obs.status.attempt} is still being completed"


def _started(obs: Observation, step: Decision | Start) -> Decision:
    """A step's decision, or the attempt it wants started."""
    if isinstance(step, Decision):
        return step
    decision = _start(obs, step.status, step.kind, step.cause, step.need, choice=step.choice)
    if isinstance(decision.action, Gather):
        return decision
    return replace(decision, events=(*step.events, *decision.events), done_command=(
        step.done_command), stop_cleared=step.stop_cleared or decision.stop_cleared)


def _not_started(obs: Observation, status: JobStatus) -> Decision:
    if obs.flink.listed is None:
        return Decision(status, Gather(Need.NONE), "reading the attempts Flink lists")
    adopted = _adopt_live(obs, status)
    if adopted is not None:
        return adopted
    if obs.hold is not None:
        held = status.with_changes(phase=obs.hold.phase, reason=obs.hold.reason,
                                   observed_generation=obs.record.generation)
        return Decision(held, Nothing(), f"not started: {obs.hold.reason}")
    return _start(obs, status, StartKind.FIRST, "first start", Need.FIRST)


def _adopt_live(obs: Observation, status: JobStatus) -> Decision | None:
    """Flink runs an attempt the status does not know (ZooKeeper lost or rolled back its data):
    adopt it, found by the job-id prefix; never restart it or start another beside it."""
    live = live_attempt(obs.flink.listed or {}, obs.record.name, status.attempt)
    if live is None:
        return None
    attempt, job_id = live
    known = f"attempt {status.attempt}" if status.attempt else "no attempt"
    why = (f"adopted attempt {attempt} ({job_id}), running in Flink; ZooKeeper's status "
           f"knew {known} (its data was lost or rolled back)")
    adopted = status.with_changes(
        phase=Phase.SUBMITTING, attempt=attempt, flink_job_id=job_id, submit_pending=False,
        stopping="", observed_generation=obs.record.generation,
        submit_hash=obs.record.submit_hash, since=obs.clock.wall, reason=why, worker=obs.owner)
    return Decision(adopted, Adopt(job_id), why, events(why))


# -- failures ----------------------------------------------------------------------------------
def _submission_refused(obs: Observation, status: JobStatus, reason: str) -> Decision:
    failure = classify_failure(reason, status.restored_from, ever_ran=False)
    if failure is FailureClass.RESTORE_UNREADABLE:
        return _reject_restore(obs, status, reason)
    if on_trial(obs, status):
        return roll_back(obs, status, RollbackTrigger.REFUSED, reason, None)
    if unsettled(status):
        return failed_again(obs, status, f"submission refused: {reason}", None)
    if failure is FailureClass.RESTORE_INCOMPATIBLE:
        return _hold_incompatible(status, reason)
    failed = status.with_changes(phase=Phase.SUBMIT_FAILED, reason=reason, last_failure=reason,
                                 submit_pending=False)
    return Decision(failed, Nothing(), f"submission rejected: {reason[:200]}",
                    events(f"submission of attempt {status.attempt} rejected: {reason}"))


def _failed(obs: Observation, status: JobStatus) -> Decision:
    """A restore point Flink could not read is passed over for the next-newest at once; state
    that does not fit the program holds the job; anything else is the job failing."""
    cause = obs.flink.root_cause or ROOT_CAUSE_PENDING
    failure = classify_failure(cause, status.restored_from,
                               ever_ran=status.phase != Phase.SUBMITTING)
    if failure is FailureClass.RESTORE_UNREADABLE:
        return _reject_restore(obs, status, cause)
    trial, again = on_trial(obs, status), unsettled(status)
    if failure is FailureClass.RESTORE_INCOMPATIBLE and not (trial or again):
        return _hold_incompatible(status, cause)
    # The REST API serves exceptions from a cache: a pushed failure usually arrives before
    # its root cause there. The pushed line is shown (only the REST cause is classified).
    pushed = obs.flink.pushed.cause if obs.flink.pushed is not None else ""
    if not obs.flink.root_cause and pushed:
        cause = f"{pushed} (as pushed by Flink)"
    if trial:
        return roll_back(obs, status, RollbackTrigger.FAILED, f"FAILED: {cause}", JobState.FAILED)
    if again:
        return failed_again(obs, status, f"FAILED: {cause}", JobState.FAILED)
    waits = status.with_changes(root_cause_pending=not (obs.flink.root_cause or pushed))
    return _restart(obs, waits, f"FAILED: {cause}")


def _unreadable_noted(obs: Observation, status: JobStatus, state: JobState | None) -> JobStatus:
    """The status with the attempt's restore point rejected when the attempt failed because
    Flink could not read it: a restart requested meanwhile must not choose it again."""
    if state is not JobState.FAILED or not obs.flink.root_cause:
        return status
    failure = classify_failure(obs.flink.root_cause, status.restored_from,
                               ever_ran=status.phase != Phase.SUBMITTING)
    if failure is not FailureClass.RESTORE_UNREADABLE:
        return status
    return status.with_rejected(RejectedRestore(
        status.restored_from, f"Flink could not restore from it: {obs.flink.root_cause[:300]}",
        obs.clock.wall))


def _reject_restore(obs: Observation, status: JobStatus, cause: str) -> Decision:
    """Remember the point as unusable; start from the next-newest, outside the policy's budget."""
    path = status.restored_from
    rejected = status.with_rejected(
        RejectedRestore(path, f"Flink could not restore from it: {cause[:300]}", obs.clock.wall))
    why = f"restore point {path} was unusable (not counted against the restart policy)"
    decision = _start(obs, rejected, StartKind.REJECTED, why, Need.AFTER)
    noted = Event(f"restore point {path} of attempt {status.attempt} is unusable: {cause}; "
                  "trying the next-newest")
    return replace(decision, events=(noted, *decision.events), failure_seen=True)


def _hold_incompatible(status: JobStatus, cause: str) -> Decision:
    """The same restore fails the same way: hold with Flink's message and what resolves it."""
    reason = f"cannot restore {status.restored_from}: {cause}; {INCOMPATIBLE_HINT}"
    noted = () if status.phase == Phase.RESTORE_INCOMPATIBLE else events(
        f"attempt {status.attempt} cannot use its restored state; held: {cause}")
    held = status.with_changes(phase=Phase.RESTORE_INCOMPATIBLE, reason=reason[:1500],
                               last_failure=cause, submit_pending=False)
    return Decision(held, Nothing(), f"held: restored state does not fit: {cause[:200]}", noted)


def _restart(obs: Observation, status: JobStatus, cause: str) -> Decision:
    """The restart policy: crash loop past maxRestarts in the window, back off while the
    backoff lasts, else restart from the newest usable restore point."""
    policy, now = obs.record.model.restartPolicy, obs.clock.wall
    recent = recent_restarts(status.restart_times, now, policy.window)
    if len(recent) >= policy.maxRestarts:
        reason = f"{len(recent)} restarts within {policy.window:g}s; last: {cause}"
        if status.phase == Phase.CRASH_LOOP and cause == status.last_failure:
            reason = status.reason  # said once: the loop Flink's restarts made reads so still
        crash = status.with_changes(phase=Phase.CRASH_LOOP, reason=reason, last_failure=cause,
                                    restart_times=recent)
        noted = () if status.phase == Phase.CRASH_LOOP else events(f"CrashLoopBackOff: {reason}")
        return Decision(crash, Nothing(), f"crash loop: {reason}", noted, failure_seen=True)
    delay = backoff_delay(len(recent), policy.backoff.initial, policy.backoff.max)
    if recent and now - recent[-1] < delay:
        waiting = status.with_changes(phase=Phase.RECOVERING, last_failure=cause,
                                      reason=f"backing off {delay:g}s after: {cause}")
        return Decision(waiting, BackOff(recent[-1] + delay),
                        f"backing off {delay:g}s before restarting", failure_seen=True)
    return _start(obs, status, StartKind.FAILURE, cause, Need.AFTER, recent=recent)


def _held(obs: Observation, status: JobStatus) -> Decision:
    """Held for its state: only an operator, a new generation or (for a missing restore point)
    a usable point appearing moves it on. Never the same retry again."""
    message = f"held in {status.phase}: {status.reason[:200]}"
    if status.phase != Phase.NO_RESTORE_POINT or not obs.memory.held_recheck_due:
        return Decision(status, Nothing(), message)
    if obs.restore is None or obs.restore.need is not Need.AFTER or obs.flink.listed is None:
        return Decision(status, Gather(Need.AFTER), "looking for a usable restore point")
    choice = choose(obs.restore.points, status.rejected_paths, obs.clock.wall,
                    check=obs.restore.problems.get)
    if choice.point is None:
        return Decision(status, Nothing(), message, held_rechecked=True)
    return _start(obs, status, StartKind.RECOVERED,
                  f"restore point {choice.point.path} became usable", choice=choice)


# -- a live attempt ----------------------------------------------------------------------------
def _alive(obs: Observation, status: JobStatus, state: JobState) -> Decision:
    """The attempt exists and is not terminal: watch it."""
    name, listed = obs.record.name, obs.flink.listed
    orphans = tuple(orphan_ids(listed, name, status.attempt)) if listed is not None else ()
    orphaned = events(*(f"cancelled orphan {o} (attempt {attempt_of(name, o)}): the current "
                        f"attempt is {status.attempt}" for o in orphans))
    changes, crash = _flink_restarts(obs, status)
    trouble = _trial_trouble(obs, status, state, bool(changes))
    if trouble is not None:
        decision = trouble
        return replace(decision, events=(*orphaned, *decision.events), orphans=orphans)
    if crash:
        looping = status.with_changes(phase=Phase.CRASH_LOOP, reason=crash, stopping=crash,
                                      last_failure=crash, **changes)
        return Decision(looping, Cancel(status.flink_job_id), f"crash loop: {crash}",
                        (*orphaned, Event(f"CrashLoopBackOff: {crash}; cancelled attempt "
                                          f"{status.attempt}")), orphans=orphans)
    if state is not JobState.RUNNING:
        restarting = state in (JobState.RESTARTING, JobState.FAILING)
        phase = Phase.RESTARTING if restarting else status.phase
        reason = f"Flink is {state} attempt {status.attempt}" if restarting else status.reason
        changed = status.with_changes(phase=phase, reason=reason, submit_pending=False,
                                      **changes)
        return Decision(changed, Nothing(), f"attempt {status.attempt} is {state}", orphaned,
                        orphans=orphans)
    decision = _running(obs, status.with_changes(**changes))
    return replace(decision, events=(*orphaned, *decision.events), orphans=orphans)


def _trial_trouble(obs: Observation, status: JobStatus, state: JobState,
                   restarted: bool) -> Decision | None:
    """A live attempt on trial that Flink restarts or that ran out of time rolls back; a
    rollback's own attempt that Flink restarts is held."""
    failing = restarted or state in (JobState.RESTARTING, JobState.FAILING)
    what = f"Flink is restarting attempt {status.attempt} ({state})"
    if on_trial(obs, status):
        if failing:
            return roll_back(obs, status, RollbackTrigger.FAILED, what, state)
        if timed_out(obs, status):
            timeout = obs.record.model.rollback.readinessTimeout
            return roll_back(obs, status, RollbackTrigger.TIMEOUT,
                             f"not stable within readinessTimeout {timeout:g}s", state)
    elif failing and unsettled(status):
        return failed_again(obs, status, what, state)
    return None


def _flink_restarts(obs: Observation, status: JobStatus) -> tuple[dict[str, Any], str]:
    """Flink's own restarts count against the policy too; past it, a crash loop."""
    count = obs.flink.restart_count
    if count is None or count <= status.flink_restarts:
        return {}, ""
    policy, now = obs.record.model.restartPolicy, obs.clock.wall
    limit = policy.maxRestarts
    added = min(count - status.flink_restarts, max(limit, 1))
    times = (*recent_restarts(status.restart_times, now, policy.window), *([now] * added))
    changes: dict[str, Any] = {"flink_restarts": count, "restart_times": times}
    if len(times) < limit or limit == 0:
        return changes, ""
    return changes, (f"Flink restarted attempt {status.attempt} {count} times; "
                     f"{len(times)} restarts within {policy.window:g}s")


def _running(obs: Observation, status: JobStatus) -> Decision:
    rollback = status.rollback
    phase = Phase.ROLLED_BACK if rollback is not None else Phase.RUNNING
    changes: dict[str, Any] = {"phase": phase, "submit_pending": False,
                               "reason": rollback.sentence[:1500] if rollback else ""}
    noted: tuple[Event, ...] = ()
    stats = obs.flink.checkpoints
    if stats is not None:
        completed = [c for c in stats.completed if c.timestamp > 0]
        changes["last_checkpoint"] = newest([*completed, status.last_checkpoint])
        durable = bool(completed) or not stats.placeholder
        if not durable and status.checkpoints_durable:
            noted = events(f"checkpoints of attempt {status.attempt} are not externally "
                           "addressable: a restart can restore only from a savepoint "
                           "(configure execution.checkpointing.dir)")
        changes["checkpoints_durable"] = durable
    if status.root_cause_pending and obs.flink.previous_cause:
        changes["last_failure"] = status.last_failure.replace(ROOT_CAUSE_PENDING,
                                                              obs.flink.previous_cause)
        changes["root_cause_pending"] = False
    if status.phase != phase:
        changes["since"] = obs.clock.wall
        if rollback is not None and rollback.attempt == status.attempt:
            noted = (*noted, *events(f"rolled back to generation {rollback.to_generation}: "
                                     f"attempt {status.attempt} RUNNING (restored from "
                                     f"{status.restored_from or 'empty state'})"))
    running = status.with_changes(**changes)
    stable, wait = stable_now(obs, running)
    if stable is not None:
        if status.stable_attempt != status.attempt and (
                obs.stable is None or obs.stable.generation != stable.generation):
            noted = (*noted, *events(f"generation {stable.generation} is stable: attempt "
                                     f"{status.attempt} RUNNING for "
                                     f"{obs.record.model.rollback.stableAfter:g}s without "
                                     "failure"))
        running = running.with_changes(stable_attempt=status.attempt)
    job_id = status.flink_job_id or flink_job_id(obs.record.name, status.attempt)
    shown = "RUNNING" + (f" (rolled back from generation {rollback.from_generation})"
                         if rollback else "")
    return Decision(running, Watch(job_id), f"attempt {status.attempt} ({job_id}) {shown}",
                    noted, stable=stable, wake_in=wait)
