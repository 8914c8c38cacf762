"""The worker's core against random histories: failures, lost attempts, broken and placeholder
restore points, a Flink that forgets ended attempts, ZooKeeper session loss with a takeover
(the old worker still running), a rolled-back status, suspends and operator restarts.

Real observer, decision function and actor; the store in memory and Flink in-process. After
every step flinksched's correctness rules hold: never two attempts alive, no attempt id
reused while Flink knows it, no placeholder or refused restore point submitted, a worker that
lost its ownership changes nothing, retention deletes no checkpoint a restore could need, and
once faults stop the job runs again unless no usable
restore point is left (and then it says so in NoRestorePoint).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import Phase as Phase_
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from common.errors import FencedError
from common.flink.jobstate import JobState
from common.store.memory import MemoryStore
from common.store.pushed import PushedEvent
from common.store.records import RUNNING_PHASES, JobRecord, JobStatus, Phase
from tests.model.flinkstandin import PLACEHOLDER, FlinkStandIn, broken_program
from tests.unit.decisions_util import NAME, record
from worker.decide.observation import Clock
from worker.decide.restore_rules import FailureClass, own_checkpoint
from worker.decide.retention import AttemptState, Prune, prune
from worker.statekeeping import Inline
from worker.supervisor import JobSupervisor
from worker.targets import DeploymentTarget

POLICY = {"maxRestarts": 1000, "backoff": {"max": "0s"}}  # every failure restarts at once
# Retention at its strictest: no earlier attempt kept as a fallback.
RETENTION = {"retainAttempts": 0}
# A cycle is a second of the model's clock: stable after 3 cycles, rolled back after 30.
ROLLBACK = {"stableAfter": "3s", "readinessTimeout": "30s"}
RUN_CYCLES = 5
SETTLE_CYCLES = 40  # each operator restart queued takes two cycles
HELD = (Phase.SUSPENDED, Phase.NO_RESTORE_POINT, Phase.RESTORE_INCOMPATIBLE,
        Phase.ROLLBACK_FAILED)
MODEL_SETTINGS = settings(max_examples=300, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


class AlwaysConnected:
    def can_act(self) -> bool:
        return True


@dataclass
class StandInTargets:
    flink: FlinkStandIn

    def for_job(self, name: str, record: JobRecord,
                poll_interval: Callable[[], float]) -> DeploymentTarget:
        return self.flink


class WorkerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.wall, self.mono = 1_800_000_000.0, 1_000.0
        self.store = MemoryStore()
        self.flink = FlinkStandIn(NAME, lambda: self.wall)
        self.deleted_needed: list[str] = []
        self.flink.storage.before_delete = self._deleting
        self.store.put_job(record(restartPolicy=POLICY, checkpoints=RETENTION, rollback=ROLLBACK))
        self.workers = (f"worker-{n}" for n in itertools.count(1))
        self.supervisor = self._take_over()
        self.stale: JobSupervisor | None = None  # lost its session, still running
        self.history: list[JobStatus] = []
        self.rolled_back = False
        self.pushes = 0
        self.rollbacks: dict[int, float] = {}  # generation rolled back from -> when

    def _clock(self) -> Clock:
        return Clock(self.wall, self.mono)

    def _take_over(self) -> JobSupervisor:
        worker = next(self.workers)
        fence = self.store.claim_ownership(NAME, worker, 1)
        supervisor = JobSupervisor(self.store, NAME, fence, AlwaysConnected(),
                                   StandInTargets(self.flink), clock=self._clock,
                                   keeping=Inline())
        supervisor.watched.start()
        return supervisor

    def _cycle(self, supervisor: JobSupervisor) -> None:
        self.wall += 1.0
        self.mono += 1.0
        try:
            supervisor.cycle()
        except FencedError:
            supervisor.fenced = True
        status, _ = self.store.status(NAME)
        if not self.history or self.history[-1] != status:
            self.history.append(status)
        self._check_rollback(status)

    def _check_rollback(self, status: JobStatus) -> None:
        """At most one rollback per generation; the stable spec never restored from what the
        generation rolled back from wrote."""
        rollback = status.rollback
        if rollback is None:
            return
        at = self.rollbacks.setdefault(rollback.from_generation, rollback.at)
        assert at == rollback.at or self.rolled_back, (
            f"generation {rollback.from_generation} rolled back twice: {status}")
        if rollback.attempt == status.attempt and status.restored_from:
            writer = self.flink.written_by(status.restored_from)
            assert self.flink.submitted_hashes.get(writer) != f"h{rollback.from_generation}", (
                f"the stable spec restored from {status.restored_from}, written by the "
                f"generation rolled back from: {status}")

    # -- the worker --------------------------------------------------------------------------
    @rule()
    def cycle(self) -> None:
        self._cycle(self.supervisor)

    @rule()
    def settle(self) -> None:
        """Faults stop: the job runs again, unless no usable restore point is left."""
        for _ in range(SETTLE_CYCLES):
            self._cycle(self.supervisor)
            if self._settled():
                break
        status, _ = self.store.status(NAME)
        if self.store.override(NAME):
            assert status.phase == Phase.SUSPENDED and not self.flink.live(), status
            return
        if status.phase in (Phase.RESTORE_INCOMPATIBLE, Phase.ROLLBACK_FAILED):
            return
        if status.phase == Phase.FINISHED and status.flink_job_id in self.flink.stopped:
            # Known gap: a status rolled back to before flinksched's own stop with a savepoint
            # cannot tell that stop from the job finishing; it stays Finished (job_up 0, so
            # alerted), not restarted. Nothing else may leave a stopped job Finished.
            assert self.rolled_back, f"Finished after a stop without a rollback: {status}"
            return
        if status.phase == Phase.NO_RESTORE_POINT:
            known = [c.path for c in (status.last_checkpoint, *status.savepoints) if c]
            usable = [p for p in known if p not in self.flink.unreadable and
                      p not in self.flink.refused and self.flink.storage.exists(p)]
            assert not usable, f"held in NoRestorePoint although {usable} can be restored"
            return
        record = self.store.job(NAME)
        assert record is not None
        if broken_program(record) and status.rollback is None:
            # A broken generation with no stable one to go back to fails as a program does.
            # (A status ZooKeeper rolled back adopts the live attempt as the record's: known.)
            stable = self.store.stable(NAME)
            assert self.rolled_back or stable is None or stable.generation >= record.generation, (
                f"broken generation {record.generation} not rolled back to {stable}: {status}")
            return
        assert status.phase in RUNNING_PHASES, f"not running after the faults: {status}"
        assert self.flink.live() == [status.flink_job_id], (self.flink.live(), status)
        assert status.submit_hash == self._wanted_hash(record), (
            f"generation {record.generation} not applied: {status}")

    def _wanted_hash(self, record: JobRecord) -> str:
        """What the attempt should run: the record's spec, or while that generation is
        rolled back, the stable one's."""
        status, _ = self.store.status(NAME)
        stable = self.store.stable(NAME)
        rollback = status.rollback
        if rollback is not None and rollback.from_generation == record.generation and stable:
            return stable.submit_hash
        return record.submit_hash

    def _settled(self) -> bool:
        status, _ = self.store.status(NAME)
        if self.store.override(NAME) or status.phase in HELD:
            return status.phase in HELD and not self.flink.live()
        record = self.store.job(NAME)
        return (status.phase in RUNNING_PHASES and not status.stopping
                and record is not None and status.submit_hash == self._wanted_hash(record)
                and self.flink.live() == [status.flink_job_id] and not self.store.commands(NAME))

    # -- Flink -------------------------------------------------------------------------------
    @rule()
    def checkpoint(self) -> None:
        self.wall += 1.0
        self.flink.checkpoint()

    @rule()
    def runs_a_while(self) -> None:
        """The attempt runs and checkpoints for a few seconds: long enough for its worker to
        read the statistics (every 3 s) and to keep what it stores in bounds."""
        for _ in range(RUN_CYCLES):
            self.flink.checkpoint()
            self._cycle(self.supervisor)

    @rule(cause=st.sampled_from(["java.lang.RuntimeException: boom",
                                 "java.lang.OutOfMemoryError: Java heap space"]))
    def attempt_fails(self, cause: str) -> None:
        self.flink.fail(cause)

    @rule()
    def newest_checkpoint_breaks(self) -> None:
        """The newest checkpoint's _metadata is gone: Flink cannot restore from it."""
        every = [p for a in self.flink.attempts_by_id.values() for p in a.checkpoints]
        if every:
            self.flink.unreadable.add(every[-1])

    @rule()
    def fails_with_its_newest_checkpoint_broken(self) -> None:
        """The state-faults reproduction: the attempt checkpoints, that checkpoint's _metadata
        goes missing, and the attempt fails."""
        path = self.flink.checkpoint()
        if path is not None:
            self.flink.unreadable.add(path)
        self.flink.fail()

    @rule()
    def checkpoints_become_placeholders(self) -> None:
        """The cluster is reconfigured without a checkpoint directory."""
        self.flink.durable = False

    @rule()
    def jobmanager_forgets_everything(self) -> None:
        self.flink.forget()

    @rule()
    def flink_forgets_ended_attempts(self) -> None:
        self.flink.forget_finished()

    @rule(truthful=st.booleans(), state=st.sampled_from(["FAILED", "CANCELED", "FINISHED",
                                                         "RUNNING"]))
    def flink_pushes(self, truthful: bool, state: str) -> None:
        """The listener pushes a status change of the newest attempt: what Flink shows, or a
        state Flink's REST API does not show (a push that lies, or one from a JobManager that
        forgot everything since)."""
        if not self.flink.attempts_by_id:
            return
        job_id = max(self.flink.attempts_by_id)
        shown = self.flink.attempts_by_id[job_id].state
        self.pushes += 1
        self.store.push(NAME, PushedEvent(job_id, JobState.RUNNING, JobState.parse(
            shown if truthful else state), self.wall, "pushed", self.pushes))

    # -- ZooKeeper and other workers ---------------------------------------------------------
    @rule()
    def session_lost_and_job_taken_over(self) -> None:
        """The owner's session expires while it keeps running; another worker takes the job."""
        old = self.supervisor
        self.store.expire_session(old.owner.holder)
        self.stale = old
        self.supervisor = self._take_over()

    @precondition(lambda self: self.stale is not None)
    @rule()
    def stale_worker_cycles(self) -> None:
        assert self.stale is not None
        submissions, cancels = len(self.flink.submissions), self.flink.cancels
        before = self.store.status(NAME)
        self._cycle(self.stale)
        assert (len(self.flink.submissions), self.flink.cancels) == (submissions, cancels), (
            "a worker that lost its ownership acted on Flink")
        assert self.store.status(NAME)[1] == before[1], "a fenced worker wrote the status"

    @precondition(lambda self: len(self.history) > 2)
    @rule(data=st.data())
    def status_rolled_back(self, data: st.DataObject) -> None:
        """ZooKeeper came back from an older snapshot: the status is an older one, and every
        session (so every supervisor) starts afresh."""
        older = data.draw(st.sampled_from(self.history[:-1]))
        self.store.expire_session(self.supervisor.owner.holder)
        self.store.restore_status(NAME, older)
        self.rolled_back = True
        # The rolled-back status forgot which points Flink refused: one more try of each is
        # the price (Flink refuses it again, and it is remembered again); never a loop.
        self.flink.refused.clear()
        self.stale = None
        self.supervisor = self._take_over()

    # -- operators ---------------------------------------------------------------------------
    @rule()
    def suspend(self) -> None:
        self.store.set_override(NAME, {"state": "suspended", "by": "model", "reason": "test"})

    @rule()
    def resume(self) -> None:
        self.store.clear_override(NAME)

    @rule(mode=st.sampled_from(["savepoint", "last-state", "stateless"]))
    def new_generation(self, mode: str) -> None:
        """The job's config changes what its attempt was submitted with."""
        current = self.store.job(NAME)
        assert current is not None
        generation = current.generation + 1
        self.store.put_job(record(generation=generation, submit_hash=f"h{generation}",
                                  job={"upgradeMode": mode, "parallelism": generation},
                                  restartPolicy=POLICY, checkpoints=RETENTION,
                                  rollback=ROLLBACK))

    @rule(how=st.sampled_from(["refuse", "fail"]), mode=st.sampled_from(["savepoint",
                                                                       "last-state"]))
    def broken_generation(self, how: str, mode: str) -> None:
        """A push whose program Flink refuses, or that fails on its first record."""
        current = self.store.job(NAME)
        assert current is not None
        generation = current.generation + 1
        self.store.put_job(record(generation=generation, submit_hash=f"h{generation}",
                                  job={"upgradeMode": mode, "args": ["--broken", how]},
                                  restartPolicy=POLICY, checkpoints=RETENTION,
                                  rollback=ROLLBACK))

    @rule()
    def operator_restarts(self) -> None:
        self.store.add_command(NAME, "restart", "model")

    # -- the rules that hold after every step ------------------------------------------------
    @invariant()
    def never_two_attempts_alive(self) -> None:
        assert len(self.flink.live()) <= 1, f"attempts alive at once: {self.flink.live()}"

    @invariant()
    def flink_was_asked_nothing_wrong(self) -> None:
        assert not self.flink.violations, self.flink.violations[0]

    @invariant()
    def no_placeholder_is_recorded_as_a_restore_point(self) -> None:
        status, _ = self.store.status(NAME)
        recorded = status.last_checkpoint.path if status.last_checkpoint else ""
        assert recorded != PLACEHOLDER, f"the placeholder {PLACEHOLDER} recorded as a checkpoint"

    @invariant()
    def retention_deleted_nothing_a_restore_could_need(self) -> None:
        assert not self.deleted_needed, self.deleted_needed[0]

    def _deleting(self, directory: str) -> None:
        """Before each deletion: no live attempt's directory, and no point the status names
        then (its checkpoint, its savepoints, the point the attempt started from while it
        has none of its own)."""
        if directory in {f"s3://ckpt/{job_id}" for job_id in self.flink.live()}:
            self.deleted_needed.append(f"deleted the checkpoints of live attempt {directory}")
        status, _ = self.store.status(NAME)
        named = [c.path for c in (status.last_checkpoint, *status.savepoints) if c]
        if not own_checkpoint(status):
            named.append(status.restored_from)
        for path in filter(None, named):
            if path.startswith(directory + "/"):
                self.deleted_needed.append(f"deleted {path}, which the status names: {status}")


TestWorkerModel = WorkerModel.TestCase
TestWorkerModel.settings = MODEL_SETTINGS


# -- the model finds the defects the state-faults work fixed, when they are put back ----------
def _finds_a_violation(monkeypatch: pytest.MonkeyPatch, *patches: tuple[str, object]) -> str:
    for target, value in patches:
        monkeypatch.setattr(target, value)
    try:
        run_state_machine_as_test(WorkerModel, settings=settings(
            MODEL_SETTINGS, max_examples=1000, phases=[Phase_.generate, Phase_.shrink],
            derandomize=True, database=None))  # the same search every run: never flaky
    except (AssertionError, ExceptionGroup) as exc:
        return "\n".join(str(e) for e in getattr(exc, "exceptions", [exc]))
    raise AssertionError("the model found nothing wrong with the defect put back")


def test_it_finds_resubmission_from_the_same_broken_checkpoint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect put back: a restore Flink could not read taken for an ordinary failure,
    retried from the same newest checkpoint forever."""
    found = _finds_a_violation(
        monkeypatch, ("worker.decide.rules.classify_failure",
                      lambda cause, restored_from, *, ever_ran: FailureClass.ORDINARY))
    # Either invariant catches it: the same refused point submitted again, or the job never
    # running again (stuck on that point: Flink's message is in its status).
    assert "which Flink refused to read before" in found or (
        "not running after the faults" in found and "Cannot find meta data file" in found)


def test_it_finds_the_placeholder_recorded_as_a_restore_point(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect put back: Flink's <checkpoint-not-externally-addressable> taken for a
    checkpoint."""
    found = _finds_a_violation(
        monkeypatch, ("worker.restore.is_placeholder", lambda path: False),
        ("worker.restore.rejection", lambda path, storage=None: None))
    assert PLACEHOLDER in found


def test_it_finds_checkpoints_deleted_that_a_restore_needs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect put back: retention without its guards, deleting earlier attempts'
    checkpoints as soon as an attempt runs, whatever the status still names."""
    def unguarded(states: list[AttemptState], current: int, own: bool, retain: int,
                  protected: tuple[str, ...], mode: str) -> Prune:
        return prune(states, current, True, retain, (), mode)

    found = _finds_a_violation(monkeypatch, ("worker.statekeeping.prune", unguarded))
    assert "which the status names" in found


def test_a_submission_refused_in_a_cycles_last_step_is_not_repeated() -> None:
    """Two unreadable points in a row: the second is refused in the cycle's last step, and
    the next cycle starts from that refusal, not from the same point again (on a Flink that
    keeps no trace of a refused submission, as 1.x)."""
    model = WorkerModel()
    model.flink.keeps_refused = False
    model.runs_a_while()  # attempt 1 runs with checkpoints
    newest = list(model.flink.attempts_by_id.values())[-1].checkpoints
    model.flink.unreadable.update(newest[-2:])
    model.flink.fail()
    for _ in range(4):
        model.cycle()
    restored = [path for _, path in model.flink.submissions[1:]]
    assert restored[:2] == [newest[-1], newest[-2]], restored
    assert len(restored) == len(set(restored)), f"a refused point submitted again: {restored}"
    assert not model.flink.violations, model.flink.violations
