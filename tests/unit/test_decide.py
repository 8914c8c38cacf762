"""The decision function, case by case and as a whole table: no ZooKeeper, no Flink, no clock."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from common.flink.jobstate import JobState
from common.spec.models import UpgradeMode
from common.store.records import HELD_PHASES, Checkpoint, Phase, RejectedRestore
from tests.unit.decisions_util import (
    NOW,
    OWNER,
    PLACEHOLDER,
    checkpoint,
    job_id,
    observe,
    record,
    settle,
    status,
    suspended,
    with_flink,
)
from worker.decide.decisions import (
    Adopt,
    BackOff,
    Cancel,
    Gather,
    Nothing,
    Resubmit,
    StartKind,
    StopPurpose,
    StopWithSavepoint,
    Submit,
    Watch,
)
from worker.decide.observation import (
    CheckpointStats,
    FlinkView,
    Hold,
    Memory,
    Need,
    Pushed,
    RestartCommand,
    SavepointState,
    StopProgress,
)
from worker.decide.rules import FINALIZE_WAIT, ROOT_CAUSE_PENDING, decide
from worker.decide.steps import UpgradePath, upgrade_path

NEWEST, OLDER = checkpoint(3, 9), checkpoint(3, 8)
UNREADABLE = "java.io.FileNotFoundException: Cannot find meta data file '_metadata'"
NO_BACKOFF = {"restartPolicy": {"backoff": {"max": "0s"}}}


def submitted(decision: object) -> Submit:
    action = getattr(decision, "action", None)
    assert isinstance(action, Submit), decision
    return action


# -- restarts and restore points ---------------------------------------------------------------
def test_a_failed_attempt_restarts_at_once_from_the_newest_checkpoint() -> None:
    failed = observe(status(), JobState.FAILED,
                     flink=FlinkView(JobState.FAILED, root_cause="ArithmeticException: / by zero",
                                     listed={job_id(3): "FAILED"}))
    decision = settle(failed, (OLDER, NEWEST))
    assert submitted(decision).kind is StartKind.FAILURE
    assert submitted(decision).restore == NEWEST
    assert decision.status.attempt == 4 and decision.status.phase is Phase.SUBMITTING
    assert decision.status.restored_from == NEWEST.path
    assert decision.status.restart_times == (NOW,) and decision.status.restarts == 1
    assert "FAILED: ArithmeticException" in decision.status.last_failure


def test_a_start_asks_for_restore_points_before_choosing() -> None:
    decision = decide(observe(status(), JobState.FAILED))
    assert decision.action == Gather(Need.AFTER)


def test_a_restore_point_failing_the_check_is_passed_over_for_the_next_newest() -> None:
    decision = settle(observe(status(), None), (OLDER, NEWEST),
                      {NEWEST.path: "has no _metadata file"})
    assert submitted(decision).restore == OLDER
    assert submitted(decision).kind is StartKind.LOST
    assert any("passed over: has no _metadata file" in e.message for e in decision.events)


def test_a_placeholder_is_never_submitted() -> None:
    placeholder = Checkpoint(PLACEHOLDER, 10, NEWEST.timestamp + 1000)
    decision = settle(observe(status(), None), (OLDER, placeholder),
                      {PLACEHOLDER: "Flink's placeholder"})
    assert submitted(decision).restore == OLDER


def test_a_restore_flink_could_not_read_is_rejected_and_the_next_newest_tried_at_once() -> None:
    current = status(Phase.SUBMITTING, restored_from=NEWEST.path,
                     restart_times=(NOW - 1,) * 9)  # the policy's budget is all but spent
    failed = observe(current, JobState.FAILED,
                     flink=FlinkView(JobState.FAILED, root_cause=UNREADABLE, listed={}))
    decision = settle(failed, (OLDER, NEWEST))
    assert submitted(decision).kind is StartKind.REJECTED
    assert submitted(decision).restore == OLDER
    assert decision.status.rejected_paths == {NEWEST.path}
    assert decision.status.restart_times == current.restart_times  # not counted


def test_a_refused_submission_of_an_unreadable_restore_point_rotates_too() -> None:
    claimed = status(Phase.SUBMITTING, attempt=4, restored_from=NEWEST.path, submit_pending=True)
    decision = settle(replace(observe(claimed, None), submit_rejection=UNREADABLE),
                      (OLDER, NEWEST))
    assert submitted(decision).restore == OLDER and decision.status.attempt == 5


def test_a_restart_requested_after_a_restore_flink_could_not_read_passes_that_point_over(
        ) -> None:
    """The operator's restart is seen before the attempt's failure: the point that failed
    it is rejected all the same, not chosen again."""
    current = status(Phase.SUBMITTING, restored_from=NEWEST.path)
    failed = observe(current, JobState.FAILED, command=RestartCommand("c-1", "ops@host"),
                     flink=FlinkView(JobState.FAILED, root_cause=UNREADABLE, listed={}))
    decision = settle(failed, (OLDER, NEWEST))
    assert submitted(decision).kind is StartKind.REQUESTED
    assert submitted(decision).restore == OLDER
    assert decision.status.rejected_paths == {NEWEST.path}


def test_a_refused_submission_for_another_reason_is_submit_failed() -> None:
    claimed = status(Phase.SUBMITTING, attempt=4, submit_pending=True)
    decision = decide(replace(observe(claimed, None),
                              submit_rejection="ClassNotFoundException: Main"))
    assert isinstance(decision.action, Nothing)
    assert decision.status.phase is Phase.SUBMIT_FAILED and not decision.status.submit_pending


def test_with_every_candidate_rejected_the_job_holds_in_no_restore_point() -> None:
    current = status(Phase.SUBMITTING, restored_from=NEWEST.path)
    failed = observe(current, JobState.FAILED,
                     flink=FlinkView(JobState.FAILED, root_cause=UNREADABLE, listed={}))
    decision = settle(failed, (NEWEST,))
    assert isinstance(decision.action, Nothing)
    assert decision.status.phase is Phase.NO_RESTORE_POINT
    assert "--from-empty" in decision.status.reason and NEWEST.path in decision.status.reason


def test_a_held_job_starts_by_itself_once_a_restore_point_is_usable() -> None:
    held = status(Phase.NO_RESTORE_POINT, reason="no usable restore point")
    waiting = observe(held, JobState.FAILED, memory=Memory(held_recheck_due=True))
    assert settle(waiting, (NEWEST,), {NEWEST.path: "does not exist"}).status == held
    decision = settle(waiting, (NEWEST,))
    assert submitted(decision).kind is StartKind.RECOVERED
    not_due = observe(held, JobState.FAILED)
    assert isinstance(decide(not_due).action, Nothing)


def test_a_held_job_with_a_newer_generation_starts_it_on_an_operators_restart() -> None:
    """The hold names `flinksched restart --from-empty`: it starts the desired generation,
    not an upgrade that would hold the job again for want of state."""
    held = status(Phase.NO_RESTORE_POINT, reason="no usable restore point after upgrade")
    pushed = record(generation=2, submit_hash="h2")
    gone = {NEWEST.path: "does not exist"}  # the only state the job had
    without = settle(observe(held, JobState.FINISHED, job=pushed), (NEWEST,), gone)
    assert without.status.phase is Phase.NO_RESTORE_POINT
    asked = observe(held, JobState.FINISHED, job=pushed,
                    command=RestartCommand("c-1", "ops@host", from_empty=True))
    decision = settle(asked, (NEWEST,), gone)
    started = submitted(decision)
    assert started.kind is StartKind.REQUESTED and started.restore is None
    assert decision.status.observed_generation == 2 and decision.status.submit_hash == "h2"
    assert decision.done_command == "c-1"


def test_state_that_does_not_fit_the_program_holds_without_retrying() -> None:
    current = status(Phase.SUBMITTING, restored_from=NEWEST.path)
    cause = "IllegalStateException: Cannot map checkpoint/savepoint state for operator x"
    decision = decide(observe(current, JobState.FAILED, flink=FlinkView(
        JobState.FAILED, root_cause=cause, listed={})))
    assert decision.status.phase is Phase.RESTORE_INCOMPATIBLE
    assert isinstance(decision.action, Nothing)
    again = decide(observe(decision.status, JobState.FAILED, flink=FlinkView(
        JobState.FAILED, root_cause=cause, listed={})))
    assert isinstance(again.action, Nothing) and not again.events


def test_a_job_without_durable_checkpoints_restarts_from_empty_state_saying_why() -> None:
    current = status(checkpoints_durable=False)
    decision = settle(observe(current, None), ())
    assert submitted(decision).restore is None
    assert "kept only in the JobManager's memory" in decision.message


# -- the restart policy ------------------------------------------------------------------------
def test_restarts_back_off_then_crash_loop_past_max_restarts() -> None:
    failed = FlinkView(JobState.FAILED, root_cause="boom", listed={})
    backing = decide(observe(status(restart_times=(NOW - 0.5,)), flink=failed))
    assert backing.status.phase is Phase.RECOVERING
    assert backing.action == BackOff(NOW - 0.5 + 1.0)  # the second restart waits 1 s
    looping = decide(observe(status(restart_times=(NOW - 1,) * 10), flink=failed))
    assert looping.status.phase is Phase.CRASH_LOOP
    assert any("CrashLoopBackOff" in e.message for e in looping.events)


def test_a_lost_attempt_restarts_without_counting() -> None:
    decision = settle(observe(status(restart_times=(NOW - 1,) * 10), None), (NEWEST,))
    assert submitted(decision).kind is StartKind.LOST
    assert decision.status.restart_times == (NOW - 1,) * 10


def test_flink_restarting_the_attempt_past_the_policy_is_a_crash_loop() -> None:
    job = record(restartPolicy={"maxRestarts": 3})
    decision = decide(observe(status(), JobState.RUNNING, job=job,
                              flink=FlinkView(JobState.RUNNING, restart_count=5)))
    assert decision.action == Cancel(job_id(3))
    assert decision.status.phase is Phase.CRASH_LOOP
    said = decision.status.reason
    assert said.startswith("Flink restarted attempt 3 5 times")
    # Once the attempt is cancelled the loop is what it was: the reason reads the same.
    cancelled = decide(observe(decision.status, JobState.CANCELED, job=job))
    assert cancelled.status.phase is Phase.CRASH_LOOP and cancelled.status.reason == said


def test_a_claim_flink_may_not_have_seen_is_submitted_again() -> None:
    claimed = status(Phase.SUBMITTING, attempt=4, submit_pending=True)
    assert isinstance(decide(observe(claimed, None)).action, Resubmit)


# -- adoption, orphans, numbering --------------------------------------------------------------
def test_a_newer_attempt_flink_runs_is_adopted_not_restarted() -> None:
    listed = {job_id(2): "CANCELED", job_id(7): "RUNNING"}
    decision = decide(observe(status(attempt=2), JobState.CANCELED, listed=listed))
    assert decision.action == Adopt(job_id(7)) and decision.status.attempt == 7
    fresh = decide(observe(status(Phase.PENDING, attempt=0), None, listed=listed))
    assert fresh.action == Adopt(job_id(7))


def test_a_new_attempt_is_numbered_above_every_attempt_flink_lists() -> None:
    listed = {job_id(3): "FAILED", job_id(11): "FINISHED"}
    failed = observe(status(), flink=FlinkView(JobState.FAILED, root_cause="x", listed=listed))
    assert settle(failed, (NEWEST,)).status.attempt == 12


def test_orphans_are_cancelled_beside_watching_the_current_attempt() -> None:
    listed = {job_id(3): "RUNNING", job_id(2): "RUNNING"}
    decision = decide(observe(status(), JobState.RUNNING, listed=listed))
    assert decision.orphans == (job_id(2),) and isinstance(decision.action, Watch)


def test_a_first_start_uses_the_initial_savepoint() -> None:
    job = record(job={"initialSavepointPath": "s3://sp/savepoint-1"})
    fresh = observe(status(Phase.PENDING, attempt=0), None, job=job, listed={})
    assert decide(replace(fresh, flink=FlinkView(listed={}))).action == Gather(Need.FIRST)
    initial = Checkpoint("s3://sp/savepoint-1", 0, 0, "savepoint")
    decision = settle(fresh, (initial,))
    assert submitted(decision).kind is StartKind.FIRST and decision.status.attempt == 1
    assert decision.status.restored_from == "s3://sp/savepoint-1"


# -- running -----------------------------------------------------------------------------------
def test_running_records_the_newest_checkpoint_and_durability() -> None:
    stats = CheckpointStats((NEWEST,), placeholder=False)
    decision = decide(observe(status(Phase.SUBMITTING), flink=FlinkView(
        JobState.RUNNING, checkpoints=stats)))
    assert decision.status.phase is Phase.RUNNING and decision.status.last_checkpoint == NEWEST
    placeholder = decide(observe(status(), flink=FlinkView(
        JobState.RUNNING, checkpoints=CheckpointStats((), placeholder=True))))
    assert placeholder.status.checkpoints_durable is False
    assert any("not externally addressable" in e.message for e in placeholder.events)


def test_a_pending_root_cause_is_filled_in_once_flink_reports_it() -> None:
    current = status(last_failure=f"FAILED: {ROOT_CAUSE_PENDING}", root_cause_pending=True)
    decision = decide(observe(current, flink=FlinkView(JobState.RUNNING, previous_cause="OOM")))
    assert decision.status.last_failure == "FAILED: OOM"
    assert not decision.status.root_cause_pending


def test_an_unreachable_cluster_backs_off_and_submits_nothing() -> None:
    decision = decide(observe(status(), flink=FlinkView(unreachable="connection refused")))
    assert decision.backoff and isinstance(decision.action, Nothing)
    assert decision.status.phase is Phase.CLUSTER_UNREACHABLE


# -- operators and generations -----------------------------------------------------------------
def test_suspending_stops_with_a_savepoint_then_holds() -> None:
    hold = suspended()
    step = decide(observe(status(), hold=hold))
    assert step.action == StopWithSavepoint(job_id(3), StopPurpose.HOLD)
    waiting = decide(observe(step.status, hold=hold, memory=Memory(stop_trigger="t1"),
                             stop=StopProgress(SavepointState.IN_PROGRESS)))
    assert isinstance(waiting.action, Nothing) and "in progress" in waiting.message
    done = decide(observe(step.status, hold=hold, memory=Memory(stop_trigger="t1"),
                          stop=StopProgress(SavepointState.COMPLETED, "s3://sp/sp-1")))
    assert done.status.phase is Phase.SUSPENDED and done.stop_cleared
    assert done.status.savepoints[-1].path == "s3://sp/sp-1"
    resumed = settle(observe(done.status, JobState.FINISHED), done.status.savepoints)
    assert submitted(resumed).kind is StartKind.RESUME
    assert resumed.status.restored_from == "s3://sp/sp-1"


def test_a_failed_savepoint_on_suspend_leaves_the_attempt_running_and_tries_again() -> None:
    failed = decide(observe(status(stopping="x"), hold=suspended(),
                            memory=Memory(stop_trigger="t1"),
                            stop=StopProgress(SavepointState.FAILED, "timeout")))
    assert failed.stop_cleared and failed.status.stopping == ""
    assert isinstance(failed.action, Nothing)


def test_an_upgrade_by_savepoint_starts_the_new_generation_from_it() -> None:
    job = record(generation=2, submit_hash="h2")
    step = decide(observe(status(), job=job))
    assert step.action == StopWithSavepoint(job_id(3), StopPurpose.UPGRADE)
    done = settle(observe(step.status, JobState.FINISHED, job=job,
                          memory=Memory(stop_trigger="t"),
                          stop=StopProgress(SavepointState.COMPLETED, "s3://sp/sp-2")))
    assert submitted(done).kind is StartKind.UPGRADE
    assert done.status.restored_from == "s3://sp/sp-2" and done.status.submit_hash == "h2"
    assert done.status.restart_times == ()


def test_a_failed_upgrade_savepoint_is_retried_later_and_the_attempt_keeps_running() -> None:
    job = record(generation=2, submit_hash="h2")
    failed = decide(observe(status(), job=job, memory=Memory(stop_trigger="t"),
                            stop=StopProgress(SavepointState.FAILED, "declined")))
    assert failed.upgrade_retry_at == 5_000.0 + 60.0
    later = decide(observe(failed.status, job=job, memory=Memory(upgrade_retry_at=5_060.0)))
    assert isinstance(later.action, Watch)


def test_a_new_attempt_forgets_a_stop_in_flight_for_the_one_it_supersedes() -> None:
    """Suspended, resumed before the savepoint completed, and upgraded by last-state: the
    start supersedes the stopped attempt, so its stop must not start yet another later."""
    job = record(generation=2, submit_hash="h2", job={"upgradeMode": "last-state"})
    seen = observe(status(stopping="suspended by ops"), JobState.FINISHED, job=job,
                   memory=Memory(stop_trigger="t1"),
                   stop=StopProgress(SavepointState.IN_PROGRESS))
    started = settle(seen, (NEWEST,))
    assert submitted(started).kind is StartKind.UPGRADE and started.stop_cleared


def test_an_upgrade_of_an_unhealthy_attempt_cancels_then_starts_from_the_newest() -> None:
    job = record(generation=2, submit_hash="h2")
    cancel = decide(observe(status(Phase.RESTARTING), JobState.RESTARTING, job=job))
    assert cancel.action == Cancel(job_id(3))
    started = settle(observe(cancel.status, JobState.CANCELED, job=job), (NEWEST,))
    assert submitted(started).restore == NEWEST


def test_a_stateless_upgrade_starts_from_empty_state() -> None:
    job = record(generation=2, submit_hash="h2", job={"upgradeMode": "stateless"})
    started = settle(observe(status(stopping="x"), JobState.CANCELED, job=job), (NEWEST,))
    assert submitted(started).restore is None


@pytest.mark.parametrize(("mode", "healthy", "stopping", "path"), [
    ("savepoint", True, False, UpgradePath.SAVEPOINT),
    ("savepoint", False, False, UpgradePath.LAST_STATE),  # a savepoint would fail or hang
    ("savepoint", False, True, UpgradePath.SAVEPOINT),  # one under way is seen through
    ("last-state", True, False, UpgradePath.LAST_STATE),
    ("stateless", True, False, UpgradePath.STATELESS),
])
def test_the_upgrade_path_follows_the_mode_as_far_as_the_attempt_allows(
        mode: UpgradeMode, healthy: bool, stopping: bool, path: UpgradePath) -> None:
    assert upgrade_path(mode, healthy, stopping) is path


def test_a_generation_that_changes_nothing_submitted_is_applied_in_place() -> None:
    job = record(generation=2, submit_hash="h1")
    decision = decide(observe(status(), job=job))
    assert decision.status.observed_generation == 2 and isinstance(decision.action, Watch)
    assert any("applied without a restart" in e.message for e in decision.events)


def test_an_operators_restart_cancels_then_starts_from_the_given_path() -> None:
    command = RestartCommand("c-1", "ops@host", from_path="s3://sp/chosen")
    cancel = decide(observe(status(), command=command))
    assert cancel.action == Cancel(job_id(3)) and not cancel.done_command
    rejected = status(stopping=cancel.status.stopping,
                      rejected_restores=(RejectedRestore("s3://sp/chosen", "x", 1.0),))
    started = settle(observe(rejected, JobState.CANCELED, command=command))
    assert submitted(started).kind is StartKind.REQUESTED
    assert started.status.restored_from == "s3://sp/chosen"
    assert started.done_command == "c-1" and not started.status.rejected_restores


def test_an_operators_restart_from_a_bad_path_is_refused() -> None:
    command = RestartCommand("c-1", "ops@host", from_path="chk-3", path_problem="not a URI")
    decision = decide(observe(status(), command=command))
    assert isinstance(decision.action, Nothing) and decision.done_command == "c-1"


def test_a_restart_request_while_suspended_is_dropped() -> None:
    held = status(Phase.SUSPENDED)
    decision = decide(observe(held, JobState.FINISHED, hold=suspended(),
                              command=RestartCommand("c-9", "oncall@host")))
    assert decision.done_command == "c-9" and isinstance(decision.action, Nothing)


def test_a_removed_job_is_held_removed() -> None:
    job = record(removed_at=NOW - 10)
    decision = decide(observe(status(Phase.SUSPENDED), JobState.FINISHED, job=job,
                              hold=Hold(Phase.REMOVED, "removed from the config")))
    assert decision.status.phase is Phase.REMOVED


def test_a_takeover_writes_the_new_owner_into_the_status() -> None:
    decision = decide(observe(status(worker="worker-b")))
    assert decision.status.worker == OWNER


# -- the whole table ---------------------------------------------------------------------------
STATES: list[JobState | None] = [None, *JobState]
COMMANDS = [None, RestartCommand("c-1", "ops@host")]
HOLDS = [None, suspended()]


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_against_every_flink_state_command_and_hold(phase: Phase) -> None:
    """Whatever it saw, a decision never has two attempts alive, never reuses an attempt,
    never submits a rejected or placeholder restore point, never starts a job that must be
    held, and never leaves a held job without saying why."""
    rejected = RejectedRestore(NEWEST.path, "Flink could not restore from it", NOW - 5)
    current = status(phase, last_failure="FAILED: boom", rejected_restores=(rejected,),
                     restored_from=OLDER.path)
    placeholder = Checkpoint(PLACEHOLDER, 99, NEWEST.timestamp + 1)
    for state, command, hold in itertools.product(STATES, COMMANDS, HOLDS):
        listed = {job_id(3): str(state)} if state else {}
        seen = observe(current, state, command=command, hold=hold, listed=listed)
        if state is JobState.FAILED:
            seen = with_flink(seen, root_cause="boom")
        decision = settle(seen, (OLDER, NEWEST, placeholder), {PLACEHOLDER: "placeholder"})
        case = f"{phase} / {state} / command={command is not None} / hold={hold is not None}"
        alive = state is not None and not state.terminal
        if isinstance(decision.action, Submit):
            assert not alive, f"{case}: submitted beside a live attempt"
            assert hold is None, f"{case}: started a held job"
            assert decision.status.attempt > current.attempt, case
            point = decision.action.restore
            assert point is None or point.path not in (NEWEST.path, PLACEHOLDER), case
        if isinstance(decision.action, Resubmit):
            assert not alive and decision.status.attempt == current.attempt, case
        if decision.status.phase in HELD_PHASES and decision.status.phase != phase:
            assert decision.status.reason, f"{case}: held without a reason"
        assert decision.message, case


# -- a status change Flink pushed --------------------------------------------------------------
def pushed_view(rest: JobState, pushed: JobState, cause: str = "") -> FlinkView:
    return FlinkView(rest, listed={job_id(3): str(rest)}, pushed=Pushed(pushed, cause))


def test_a_pushed_failure_its_rest_api_does_not_show_yet_is_looked_at_again_soon() -> None:
    decision = decide(observe(status(), flink=pushed_view(JobState.RUNNING, JobState.FAILED)))
    assert decision.recheck and isinstance(decision.action, Nothing | Watch)
    assert decision.status.attempt == 3, "nothing starts on a push alone"
    assert "Flink pushed FAILED, its REST API shows RUNNING" in decision.message
    assert not decide(observe(status())).recheck


def test_a_confirmed_pushed_failure_restarts_at_once_saying_how_it_was_noticed() -> None:
    seen = observe(status(), JobState.FAILED, flink=pushed_view(
        JobState.FAILED, JobState.FAILED, "java.lang.IllegalStateException: boom"))
    decision = settle(seen, (OLDER, NEWEST))
    assert submitted(decision).restore == NEWEST and not decision.recheck
    started = decision.events[-1]
    assert dict(started.extra)["noticedBy"] == "push"
    # The REST API had no root cause yet: the pushed line is shown, as pushed.
    assert decision.status.last_failure == (
        "FAILED: java.lang.IllegalStateException: boom (as pushed by Flink)")
    assert not decision.status.root_cause_pending
    polled = settle(observe(status(), JobState.FAILED), (OLDER, NEWEST))
    assert dict(polled.events[-1].extra)["noticedBy"] == "poll"
    assert polled.status.root_cause_pending


def test_a_pushed_cause_is_shown_never_classified() -> None:
    """Only the REST API's root cause can reject a restore point: a pushed line naming an
    unreadable restore is an ordinary failure until the REST API says so."""
    current = status(restored_from=NEWEST.path)
    seen = observe(current, JobState.FAILED,
                   flink=pushed_view(JobState.FAILED, JobState.FAILED, UNREADABLE))
    decision = settle(seen, (OLDER, NEWEST))
    assert submitted(decision).kind is StartKind.FAILURE
    assert submitted(decision).restore == NEWEST and not decision.status.rejected_paths


# -- an attempt that ended while Flink completed a checkpoint ------------------------------------
def completing(seconds_ago: float) -> Checkpoint:
    return Checkpoint(path="", id=NEWEST.id + 1, timestamp=int((NOW - seconds_ago) * 1000),
                      kind="checkpoint")


def test_a_failure_during_a_checkpoints_completion_waits_for_it_then_starts_from_the_newest(
        ) -> None:
    """Flink completes a checkpoint whose acknowledgements all arrived even after the job
    FAILED: the start waits (and looks again soon) rather than take the one before."""
    waiting = settle(observe(status(), JobState.FAILED), (OLDER, NEWEST),
                     finalizing=completing(0.3))
    assert isinstance(waiting.action, Nothing) and waiting.retry_in is not None
    assert waiting.status.attempt == 3, "no attempt claimed"
    assert f"checkpoint {NEWEST.id + 1} of attempt 3 is still being completed" in waiting.message
    completed = replace(NEWEST, id=NEWEST.id + 1, path=NEWEST.path + "-next")
    assert submitted(settle(observe(status(), JobState.FAILED), (OLDER, NEWEST, completed))
                     ).restore == completed


def test_a_checkpoint_in_progress_whose_metadata_is_listed_holds_nothing() -> None:
    """Flink's statistics lag (a cache): the checkpoint listed with its metadata is done."""
    done = checkpoint(3, NEWEST.id + 1)
    decision = settle(observe(status(), JobState.FAILED), (OLDER, NEWEST, done),
                      finalizing=completing(0.3))
    assert submitted(decision).restore == done


def test_a_checkpoint_in_progress_long_after_its_last_acknowledgement_holds_nothing() -> None:
    late = settle(observe(status(), JobState.FAILED), (OLDER, NEWEST),
                  finalizing=completing(FINALIZE_WAIT + 1))
    assert submitted(late).restore == NEWEST


# -- checkpoint storage that does not answer -----------------------------------------------------
STORE_DOWN = "checkpoint storage unreachable: s3://b/ckpt/x: Error performing GET: refused"


def test_storage_that_does_not_answer_holds_the_start_rather_than_an_older_point_or_none() -> None:
    for state in (JobState.FAILED, None):  # failed, and lost with its JobManager
        decision = settle(observe(status(), state), (OLDER,), unreachable=STORE_DOWN)
        assert not isinstance(decision.action, Submit), f"{state}: started without its storage"
        assert decision.status.phase == Phase.STORAGE_UNREACHABLE and decision.backoff
        assert decision.status.reason == STORE_DOWN
        assert decision.status.attempt == 3, "no attempt claimed"
        assert any("waiting for the storage" in e.message for e in decision.events)


def test_a_job_waiting_for_its_storage_starts_from_the_newest_point_once_it_answers() -> None:
    waiting = status(Phase.STORAGE_UNREACHABLE, last_failure="FAILED: boom", reason=STORE_DOWN)
    still = settle(observe(waiting, JobState.FAILED), (OLDER,), unreachable=STORE_DOWN)
    assert still.events == (), "said once, not every cycle"
    assert submitted(settle(observe(waiting, JobState.FAILED), (OLDER, NEWEST))).restore == (
        NEWEST)
