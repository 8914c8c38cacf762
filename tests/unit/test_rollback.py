"""Rolling a broken upgrade back: the decision table (`worker.decide.rollback`), in milliseconds.

Generation 1 is stable (attempt 2 proved it); generation 2 is on trial in attempt 3, started
from the savepoint the upgrade took of attempt 2 (`UPGRADE_POINT`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from common.errors import StoreError
from common.flink.jobstate import JobState
from common.spec.models import FlinkJobSpec
from common.store.records import (
    Checkpoint,
    JobRecord,
    JobStatus,
    Phase,
    Rollback,
    RollbackTrigger,
    StableSpec,
    encode,
)
from tests.unit.decisions_util import (
    NOW,
    OWNER,
    checkpoint,
    job_id,
    observe,
    record,
    settle,
    status,
)
from worker.decide.decisions import Cancel, Decision, Nothing, StartKind, StopWithSavepoint, Submit
from worker.decide.observation import (
    FlinkView,
    Memory,
    Observation,
    RestartCommand,
    RollbackRequest,
    SavepointState,
    StopProgress,
)
from worker.decide.rules import decide

UPGRADE_POINT = Checkpoint(f"s3://sp/{job_id(2)}/savepoint-1", 1, int((NOW - 50) * 1000),
                           "savepoint")
POLICY = {"stableAfter": "10s", "readinessTimeout": "60s"}
STABLE = StableSpec.of(record(generation=1, submit_hash="h1", rollback=POLICY), 2, NOW - 500)


def trial_job(**job: Any) -> JobRecord:
    return record(generation=2, submit_hash="h2", rollback=POLICY, job=job or None)


def on_trial(phase: Phase = Phase.RUNNING, **changes: Any) -> JobStatus:
    """Attempt 3 runs generation 2, upgraded from stable attempt 2 a few seconds ago."""
    fields: dict[str, Any] = {"observed_generation": 2, "submit_hash": "h2",
                              "restored_from": UPGRADE_POINT.path, "upgrade_point": UPGRADE_POINT,
                              "upgraded_at": NOW - 5, "stable_attempt": 2, "since": NOW - 3}
    return status(phase, attempt=3, **{**fields, **changes})


def seen(current: JobStatus, state: JobState | None = JobState.RUNNING, *,
         job: JobRecord | None = None, **fields: Any) -> Observation:
    return observe(current, state, job=job or trial_job(), stable=STABLE, **fields)


def rolled_back(trigger: RollbackTrigger = RollbackTrigger.FAILED, attempt: int = 0,
                **changes: Any) -> JobStatus:
    rollback = Rollback(2, 1, trigger, "FAILED: boom", NOW - 1, attempt)
    return on_trial(Phase.SUBMITTING if attempt else Phase.RECOVERING, rollback=rollback,
                    rollbacks=1, **changes)


def running_record() -> JobRecord:
    """What the supervisor hands the decision while generation 2 is rolled back."""
    return STABLE.as_record(trial_job())


def submitted(decision: Decision) -> Submit:
    assert isinstance(decision.action, Submit), decision.message
    return decision.action


# -- when a trial rolls back -----------------------------------------------------------------
def test_a_submission_flink_refuses_rolls_back_at_once() -> None:
    claimed = on_trial(Phase.SUBMITTING, submit_pending=True)
    decision = decide(replace(seen(claimed, None), submit_rejection="ClassNotFoundException: x"))
    assert decision.status.rollback is not None
    assert decision.status.rollback.trigger is RollbackTrigger.REFUSED
    assert (decision.status.rollback.from_generation, decision.status.rollback.to_generation) \
        == (2, 1)
    assert isinstance(decision.action, Nothing) and decision.retry_in == 0.0
    assert decision.status.rollbacks == 1
    assert "ClassNotFoundException" in decision.events[0].message


def test_a_trial_attempt_that_fails_rolls_back_instead_of_restarting() -> None:
    decision = decide(seen(on_trial(), JobState.FAILED, flink=FlinkView(
        state=JobState.FAILED, root_cause="java.lang.IllegalStateException: injected",
        listed={job_id(3): "FAILED"})))
    assert decision.status.rollback is not None
    assert decision.status.rollback.trigger is RollbackTrigger.FAILED
    assert "IllegalStateException" in decision.status.rollback.cause
    assert not isinstance(decision.action, Submit)


def test_state_that_does_not_fit_the_new_program_rolls_back_rather_than_holding() -> None:
    cause = "java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint " \
            "s3://sp. Cannot map checkpoint/savepoint state for operator x to the new program"
    decision = decide(seen(on_trial(Phase.SUBMITTING), JobState.FAILED, flink=FlinkView(
        state=JobState.FAILED, root_cause=cause, listed={job_id(3): "FAILED"})))
    assert decision.status.rollback is not None
    assert decision.status.phase != Phase.RESTORE_INCOMPATIBLE


def test_a_trial_attempt_flink_restarts_is_cancelled_and_rolled_back() -> None:
    decision = decide(seen(on_trial(), JobState.RESTARTING))
    assert decision.action == Cancel(job_id(3))
    assert decision.status.rollback is not None and decision.status.stopping


def test_a_trial_not_stable_within_its_readiness_timeout_rolls_back() -> None:
    late = on_trial(upgraded_at=NOW - 61, checkpoints_durable=False)
    decision = decide(seen(late))
    assert decision.action == Cancel(job_id(3))
    assert decision.status.rollback is not None
    assert decision.status.rollback.trigger is RollbackTrigger.TIMEOUT


def test_a_trial_within_its_time_is_watched_and_woken_when_it_could_be_stable() -> None:
    decision = decide(seen(on_trial(since=NOW - 3)))
    assert decision.status.rollback is None and decision.stable is None
    assert decision.wake_in == pytest.approx(7.0)


def test_stability_needs_its_time_a_checkpoint_of_its_own_and_no_failure() -> None:
    job = record(generation=2, submit_hash="h2", rollback=POLICY,
                 flinkConfiguration={"execution.checkpointing.interval": "1s"})
    long_enough = on_trial(since=NOW - 11)
    assert decide(seen(long_enough, job=job)).stable is None  # no checkpoint of its own yet
    own = long_enough.with_changes(last_checkpoint=checkpoint(3, 4))
    assert decide(seen(own.with_changes(flink_restarts=1), job=job)).stable is None
    proven = decide(seen(own, job=job))
    assert proven.stable is not None and proven.stable.generation == 2
    assert proven.status.stable_attempt == 3
    assert any("generation 2 is stable" in e.message for e in proven.events)


def test_a_stable_generation_that_fails_later_is_restarted_as_before() -> None:
    stable_two = replace(STABLE, generation=2, submit_hash="h2", attempt=3)
    decision = settle(observe(on_trial(stable_attempt=3), JobState.FAILED, job=trial_job(),
                              stable=stable_two, flink=FlinkView(
                                  state=JobState.FAILED, root_cause="java.io.IOException: x",
                                  listed={job_id(3): "FAILED"})), (checkpoint(3, 9),))
    assert submitted(decision).kind is StartKind.FAILURE
    assert decision.status.rollback is None


@pytest.mark.parametrize(("job", "stable"), [
    ({"upgradeMode": "stateless"}, STABLE),  # stateless: only when asked
    ({}, None),  # no generation was ever stable
])
def test_no_rollback_without_a_stable_generation_or_for_stateless_jobs(
        job: dict[str, Any], stable: StableSpec | None) -> None:
    decision = settle(observe(on_trial(), JobState.FAILED, job=trial_job(**job), stable=stable,
                              flink=FlinkView(state=JobState.FAILED, root_cause="boom",
                                              listed={job_id(3): "FAILED"})),
                      (checkpoint(3, 9),))
    assert decision.status.rollback is None
    assert submitted(decision).kind is StartKind.FAILURE


def test_a_job_that_opts_out_is_restarted_as_before() -> None:
    job = record(generation=2, submit_hash="h2", rollback={**POLICY, "enabled": False})
    decision = settle(seen(on_trial(), JobState.FAILED, job=job, flink=FlinkView(
        state=JobState.FAILED, root_cause="boom", listed={job_id(3): "FAILED"})),
        (checkpoint(3, 9),))
    assert decision.status.rollback is None


# -- the rollback itself ---------------------------------------------------------------------
def test_the_stable_spec_starts_from_the_upgrades_savepoint_never_the_trials_checkpoint() -> None:
    trials_newest = checkpoint(3, 9)
    decision = settle(observe(rolled_back(), JobState.FAILED, job=running_record(),
                              stable=STABLE), (trials_newest, UPGRADE_POINT))
    action = submitted(decision)
    assert action.kind is StartKind.ROLLBACK and action.restore == UPGRADE_POINT
    claimed = decision.status
    assert (claimed.attempt, claimed.observed_generation, claimed.submit_hash) == (4, 1, "h1")
    assert claimed.rollback is not None and claimed.rollback.attempt == 4
    assert claimed.restart_times == ()


def test_a_trial_attempt_still_alive_is_cancelled_before_the_stable_spec_starts() -> None:
    decision = decide(observe(rolled_back(), JobState.RUNNING, job=running_record(),
                              stable=STABLE))
    assert decision.action == Cancel(job_id(3))


def test_a_rollback_whose_restore_point_is_gone_is_held() -> None:
    decision = settle(observe(rolled_back(), JobState.FAILED, job=running_record(),
                              stable=STABLE), (UPGRADE_POINT,),
                      problems={UPGRADE_POINT.path: "its _metadata is missing"})
    assert decision.status.phase == Phase.ROLLBACK_FAILED
    assert "flinksched restart orders --from PATH" in decision.status.reason
    assert not isinstance(decision.action, Submit)


def test_a_rollback_held_for_its_gone_restore_point_starts_on_an_operators_restart() -> None:
    """The reason names `flinksched restart --from PATH` and `--from-empty`: either starts the
    stable spec, instead of the rollback step holding the job again."""
    gone = {UPGRADE_POINT.path: "its _metadata is missing"}
    held_now = settle(observe(rolled_back(), JobState.FAILED, job=running_record(),
                              stable=STABLE), (UPGRADE_POINT,), problems=gone).status
    assert held_now.phase == Phase.ROLLBACK_FAILED
    asked = observe(held_now, JobState.FAILED, job=running_record(), stable=STABLE,
                    command=RestartCommand("c-1", "ops@host", from_empty=True))
    decision = settle(asked, (UPGRADE_POINT,), problems=gone)
    assert isinstance(decision.action, Submit) and decision.action.restore is None
    assert decision.status.phase == Phase.SUBMITTING and decision.done_command == "c-1"
    # Still the rollback's: generation 2 is not tried again once this attempt runs.
    rollback = decision.status.rollback
    assert rollback is not None and rollback.from_generation == 2
    assert rollback.attempt == decision.status.attempt


def test_a_rolled_back_job_proven_again_that_fails_later_is_restarted_not_held() -> None:
    """Once the stable spec's attempt proved itself again, a failure is an ordinary one: the
    restart keeps the rollback as it was, so the next failure is restarted too."""
    proven = rolled_back(attempt=4).with_changes(
        phase=Phase.ROLLED_BACK, attempt=4, flink_job_id=job_id(4), submit_hash="h1",
        observed_generation=1, stable_attempt=4)
    newest = checkpoint(4, 7)
    failed = observe(proven, JobState.FAILED, job=running_record(), stable=STABLE,
                     flink=FlinkView(state=JobState.FAILED, root_cause="boom",
                                     listed={job_id(4): "FAILED"}))
    decision = settle(failed, (newest,))
    assert submitted(decision).kind is StartKind.FAILURE
    assert decision.status.rollback == proven.rollback  # its attempt still 4, proven
    again = decision.status.with_changes(phase=Phase.RUNNING)
    failed_again = observe(again, JobState.FAILED, job=running_record(), stable=STABLE,
                           flink=FlinkView(state=JobState.FAILED, root_cause="boom",
                                           listed={job_id(5): "FAILED"}))
    later = settle(failed_again, (newest,))
    assert later.status.phase is Phase.RECOVERING, later.status.reason  # backs off, then retries


def test_a_rollback_whose_own_attempt_fails_is_held_not_tried_back_and_forth() -> None:
    started = rolled_back(attempt=4).with_changes(attempt=4, flink_job_id=job_id(4),
                                                  submit_hash="h1", observed_generation=1)
    decision = decide(observe(started, JobState.FAILED, job=running_record(), stable=STABLE,
                              flink=FlinkView(state=JobState.FAILED, root_cause="boom",
                                              listed={job_id(4): "FAILED"})))
    assert decision.status.phase == Phase.ROLLBACK_FAILED
    assert "failed too" in decision.status.reason
    later = decide(observe(decision.status, JobState.FAILED, job=running_record(),
                           stable=STABLE))
    assert isinstance(later.action, Nothing)


def test_the_rolled_back_job_runs_as_rolled_back_and_says_from_which_generation() -> None:
    started = rolled_back(attempt=4).with_changes(attempt=4, flink_job_id=job_id(4),
                                                  submit_hash="h1", observed_generation=1)
    decision = decide(observe(started, JobState.RUNNING, job=running_record(), stable=STABLE))
    assert decision.status.phase == Phase.ROLLED_BACK
    assert "generation 2 rolled back to generation 1" in decision.status.reason
    assert any("rolled back to generation 1: attempt 4 RUNNING" in e.message
               for e in decision.events)


# -- after a rollback ------------------------------------------------------------------------
def running_rolled_back() -> JobStatus:
    return rolled_back(attempt=4).with_changes(
        phase=Phase.ROLLED_BACK, attempt=4, flink_job_id=job_id(4), submit_hash="h1",
        observed_generation=1, stable_attempt=4, since=NOW - 100)


def test_the_next_generation_is_an_upgrade_from_the_stable_spec() -> None:
    job = record(generation=3, submit_hash="h3", rollback=POLICY)
    step = decide(observe(running_rolled_back(), job=job, stable=STABLE))
    assert step.action == StopWithSavepoint(job_id(4), step.action.purpose)  # type: ignore[union-attr]
    done = settle(observe(step.status, JobState.FINISHED, job=job, stable=STABLE,
                          memory=Memory(stop_trigger="t"),
                          stop=StopProgress(SavepointState.COMPLETED, "s3://sp/sp-9")))
    assert submitted(done).kind is StartKind.UPGRADE
    assert done.status.rollback is None
    assert done.status.upgrade_point is not None
    assert done.status.upgrade_point.path == "s3://sp/sp-9"


def test_a_generation_equal_to_the_stable_spec_ends_the_rollback_without_a_restart() -> None:
    job = record(generation=3, submit_hash="h1", rollback=POLICY)
    decision = decide(observe(running_rolled_back(), job=job, stable=STABLE))
    assert decision.status.rollback is None and decision.status.phase == Phase.RUNNING
    assert not isinstance(decision.action, Submit | Cancel | StopWithSavepoint)
    assert decision.stable is not None and decision.stable.generation == 3


def test_a_resume_into_a_generation_pushed_while_suspended_starts_its_trial() -> None:
    """Suspended while rolled back, then resumed by a new generation (another program): the
    rollback ends and that generation is on trial from the suspension's savepoint."""
    job = record(generation=4, submit_hash="h3", rollback=POLICY)
    savepoint = Checkpoint("s3://sp/suspended", 2, int(NOW * 1000), "savepoint")
    suspended = running_rolled_back().with_changes(phase=Phase.SUSPENDED,
                                                   savepoints=(savepoint,))
    started = settle(observe(suspended, JobState.FINISHED, job=job, stable=STABLE),
                     (savepoint,))
    assert submitted(started).kind is StartKind.RESUME
    assert started.status.rollback is None and started.status.upgrade_point == savepoint
    assert started.status.upgraded_at == NOW


def test_an_upgrade_from_a_generation_still_on_trial_keeps_the_stable_state() -> None:
    job = record(generation=3, submit_hash="h3", rollback=POLICY)
    done = settle(observe(on_trial(), JobState.FINISHED, job=job, stable=STABLE,
                          memory=Memory(stop_trigger="t"),
                          stop=StopProgress(SavepointState.COMPLETED, "s3://sp/of-trial")))
    assert submitted(done).restore is not None
    assert done.status.upgrade_point == UPGRADE_POINT


def test_a_requested_rollback_rolls_back_and_one_with_nothing_to_go_back_to_is_refused() -> None:
    request = RollbackRequest("cmd-1", "ops")
    decision = decide(seen(on_trial(stable_attempt=0), rollback_request=request))
    assert decision.status.rollback is not None
    assert decision.status.rollback.trigger is RollbackTrigger.REQUESTED
    assert decision.done_command == "cmd-1"
    refused = decide(observe(status(), job=record(), stable=STABLE,
                             rollback_request=request))
    assert refused.status.rollback is None and refused.done_command == "cmd-1"
    assert "refused a rollback" in refused.events[0].message
    assert refused.status.worker == OWNER


# -- what ZooKeeper keeps --------------------------------------------------------------------
def test_a_status_in_a_rollback_and_the_stable_spec_read_back_as_written() -> None:
    status = running_rolled_back()
    assert JobStatus.from_json(status.to_json()) == status
    assert StableSpec.from_json_bytes("orders", encode(STABLE.to_json())) == STABLE
    with pytest.raises(StoreError, match="job orders: unreadable stable spec"):
        StableSpec.from_json_bytes("orders", b'{"generation": 1}')


def test_the_plan_says_a_change_lands_on_top_of_a_rollback() -> None:
    from scheduler.cli.config import render_plan
    from scheduler.master.changes import CHANGED, Change, Plan

    plan = Plan([Change("orders", CHANGED, "savepoint", record=record(generation=3))])
    text = render_plan(plan, rolled={"orders": Rollback(2, 1, RollbackTrigger.FAILED, "x", NOW)})
    assert "on top of a rollback: the job runs generation 1's spec (generation 2 was rolled " \
           "back, failed); this generation is an upgrade from it" in text


@pytest.mark.parametrize(("configured", "seconds"), [
    ("10min", 600.0), ("10 min", 600.0), ("10m", 600.0), ("2 minutes", 120.0), ("30s", 30.0),
    ("30 sec", 30.0), ("1h", 3600.0), ("1 d", 86400.0), ("500ms", 0.5), ("500", 0.5),
    ("10MIN", 600.0)])
def test_the_checkpoint_interval_is_read_as_flink_reads_it(configured: str, seconds: float) -> None:
    """A job that checkpoints every `10min` checkpoints: stability waits for its checkpoint
    (read with flinksched's own spelling, `10min` was once taken for no checkpointing)."""
    spec = FlinkJobSpec.model_validate({
        "job": {"jarURI": "file:///job.jar"},
        "flinkConfiguration": {"execution.checkpointing.interval": configured}})
    assert spec.checkpoint_interval == seconds


def test_a_checkpoint_interval_flink_would_not_read_is_none() -> None:
    spec = FlinkJobSpec.model_validate({
        "job": {"jarURI": "file:///job.jar"},
        "flinkConfiguration": {"execution.checkpointing.interval": "10 fortnights"}})
    assert spec.checkpoint_interval is None
