"""Carrying a decision out against the job's deployment target and the store.

The actor is the job status's only writer (every write a compare-and-set fenced by ownership)
and keeps what the supervisor must remember between cycles: a stop-with-savepoint in flight,
when a failed one is retried, and when the current outage was first seen.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from common.errors import (
    ClusterLaunchFailed,
    FlinkRequestFailed,
    FlinkschedError,
    FlinkUnreachable,
    JobAlreadySubmitted,
    RunRequestBusy,
)
from common.flink.versions import SAVEPOINT_DIR
from common.metrics import RECOVERY_SECONDS
from common.store.interfaces import JobStore
from common.store.records import RUNNING_PHASES, Fence, JobRecord, JobStatus, Phase, StableSpec
from worker.decide.decisions import (
    Adopt,
    Cancel,
    Decision,
    Gather,
    Outcome,
    Resubmit,
    StopWithSavepoint,
    Submit,
    Watch,
)
from worker.decide.observation import Memory
from worker.observe import Observer
from worker.programs.jars import JarError
from worker.savepoints import SavepointKeeper
from worker.statekeeping import StateKeeper
from worker.targets import DeploymentTarget

logger = logging.getLogger(__name__)


def savepoint_dir(record: JobRecord) -> str | None:
    """The job's own savepoint directory (flinkConfiguration), else None: the cluster's. A
    session cluster's REST API takes its default from the cluster, never from the job."""
    return SAVEPOINT_DIR.read(record.model.flinkConfiguration)


class ActGuard(Protocol):
    def can_act(self) -> bool:
        """False while the store's connection cannot be trusted: no Flink action then."""
        ...


PAUSED = "paused: ZooKeeper connection is not healthy"
RUN_TURN_RETRY = 0.5  # seconds: another run request held the cluster; try for a turn again


class Actor:
    def __init__(self, store: JobStore, name: str, owner: Fence, guard: ActGuard,
                 observer: Observer, savepoints: SavepointKeeper,
                 statekeeper: StateKeeper | None = None) -> None:
        self.store = store
        self.name = name
        self.owner = owner
        self.guard = guard
        self.observer = observer
        self.savepoints = savepoints
        self.statekeeper = statekeeper or StateKeeper(name)
        self.source = f"worker {owner.holder}"
        self.current = JobStatus()
        self.version = -1
        self.stale = True  # read the status again before the next decision
        self.stop_trigger = ""  # trigger id of a stop-with-savepoint in flight
        self.stop_failure = ""  # a stop-with-savepoint that could not be triggered
        self.upgrade_retry_at = 0.0
        self.cancel_sent = ("", 0.0)  # the last cancel this worker sent: job id, monotonic
        self.failure_seen: float | None = None  # monotonic time the current outage was noticed
        self.stable: StableSpec | None = None  # the job's last stable generation, as stored

    def status(self) -> JobStatus:
        if self.stale:
            # The actor is the status's only writer, so what it wrote last is current until a
            # write fails.
            self.current, self.version = self.store.status(self.name)
            self.stable = self.store.stable(self.name)
            self.stale = False
        return self.current

    def memory(self) -> Memory:
        return Memory(self.stop_trigger, self.upgrade_retry_at, cancel_sent=self.cancel_sent)

    def take_stop_failure(self) -> str:
        failure, self.stop_failure = self.stop_failure, ""
        return failure

    # -- carrying a decision out -------------------------------------------------------------
    def carry_out(self, decision: Decision, record: JobRecord, target: DeploymentTarget,
                  submit_to: DeploymentTarget | None = None) -> Outcome:
        """`target`: where the status's attempt runs; `submit_to`: where a new attempt
        starts, when that is elsewhere (the job moved to another cluster)."""
        action = decision.action
        assert not isinstance(action, Gather), "gathering is the observer's"
        on_flink = isinstance(action, Submit | Resubmit | Cancel | StopWithSavepoint)
        acts = on_flink or decision.release
        if acts and not self.guard.can_act():
            return Outcome(PAUSED)
        if decision.failure_seen and self.failure_seen is None:
            self.failure_seen = self.observer.clock().mono
        if decision.upgrade_retry_at is not None:
            self.upgrade_retry_at = decision.upgrade_retry_at
        if decision.stop_cleared:
            self.stop_trigger = ""
        if decision.held_rechecked:
            self.observer.rechecked_held()
        before = self.current
        # A decision that starts nothing in Flink says why before the status shows it
        # (readers of a new status find its events; releasing a cluster comes before both);
        # one that acts on Flink writes its events after the action, off a restart's path.
        explained = not on_flink and not decision.orphans
        if explained:
            self._events(decision)
        if decision.release:
            # Before the status: a removed job's node may be deleted right after it says so.
            # Only clusters whose attempt ended are released.
            target.release()
        if decision.stable is not None:  # before the status that names its attempt
            self.store.write_stable(self.name, decision.stable, self.owner)
            self.stable = decision.stable
        self.record(decision.status)  # first: a worker that lost the job must not act on it
        if isinstance(action, StopWithSavepoint):
            try:
                self.stop_trigger = target.stop_with_savepoint(action.job_id,
                                                               savepoint_dir(record))
            except FlinkschedError as exc:  # the next cycle clears `stopping` and says why
                self.stop_failure = f"stop with savepoint failed: {exc}"
                return Outcome(self.stop_failure)
        for orphan in decision.orphans:
            target.cancel(orphan)
        outcome = Outcome(decision.message, backoff=decision.backoff, soon=decision.recheck,
                          retry_in=decision.retry_in, wake_in=decision.wake_in)
        if isinstance(action, Submit | Resubmit):
            outcome = self._submit(record, submit_to or target, decision.message if isinstance(
                action, Submit) else "")
        elif isinstance(action, Cancel):
            target.cancel(action.job_id)
            self.cancel_sent = (action.job_id, self.observer.clock().mono)
        elif isinstance(action, Adopt):
            self.observer.adopted()
            if target.attempt_url:  # the adopted attempt's own cluster is where its UI is
                self.record(self.current.with_changes(cluster_url=target.attempt_url))
        elif isinstance(action, Watch):
            self._watch(record, target, before, action.job_id)
        if not explained:
            self._events(decision)
        if decision.done_command:
            self.store.delete_command(self.name, decision.done_command)
        return outcome

    def _events(self, decision: Decision) -> None:
        for event in decision.events:
            self.event(event.message, **dict(event.extra))

    def _submit(self, record: JobRecord, target: DeploymentTarget, decided: str) -> Outcome:
        """Submit the claimed attempt with its deterministic job id; safe to repeat."""
        status = self.current
        job_id = status.flink_job_id
        self.observer.submitting(target, job_id)
        prefix = f"{decided}; " if decided else ""
        try:
            target.submit(record, job_id, status.restored_from)
            outcome = Outcome(f"{prefix}submitted attempt {status.attempt} as {job_id}",
                              quiet=True)
        except JobAlreadySubmitted:
            self.observer.adopted()
            outcome = Outcome(f"{prefix}attempt {status.attempt} was already submitted; "
                              "adopting it")
        except RunRequestBusy as exc:  # the claimed attempt is submitted by the next cycle
            return Outcome(f"{prefix}not submitted yet: {exc}", retry_in=RUN_TURN_RETRY)
        except FlinkUnreachable as exc:
            self.record(status.with_changes(phase=Phase.CLUSTER_UNREACHABLE,
                                            reason=str(exc)[:300]))
            return Outcome(f"{prefix}cluster unreachable: {exc}", backoff=True)
        except (FlinkRequestFailed, JarError, ClusterLaunchFailed) as exc:
            reason = exc.message if isinstance(exc, FlinkRequestFailed) else str(exc)
            return Outcome(f"{prefix}submission refused", rejected=reason.strip()[:1000])
        # A cluster of the attempt's own is where its UI is from now on.
        self.record(self.current.with_changes(submit_pending=False,
                                              cluster_url=target.attempt_url))
        return outcome

    def _watch(self, record: JobRecord, target: DeploymentTarget, before: JobStatus,
               job_id: str) -> None:
        """The attempt runs: note how long the outage lasted, take savepoints, keep what it
        stores in bounds."""
        status = self.current
        if before.phase not in RUNNING_PHASES and self.failure_seen is not None:
            took = self.observer.clock().mono - self.failure_seen
            RECOVERY_SECONDS.observe(took)
            self.failure_seen = None
            restored = status.restored_from or "empty state"
            self.event(f"attempt {status.attempt} RUNNING {took:.1f}s after the failure was "
                       f"seen (restored from {restored})")
        step = self.savepoints.step(target, status, job_id, record.model.savepoints.retain,
                                    savepoint_dir(record))
        for number, event in enumerate(step.events):
            said = {"command": step.command, "savepointResult": step.result} if (
                number == 0 and step.result is not None and step.command) else {}
            self.event(event, **said)
        if step.status is not None:
            self.record(step.status)
        kept = self.statekeeper.step(record, target, self.current)
        for event in kept.events:
            self.event(event)
        if kept.stored is not None:
            self.record(self.current.with_changes(stored=kept.stored))

    # -- writes ------------------------------------------------------------------------------
    def record(self, new: JobStatus) -> None:
        """Write the status when it changed; an unchanged status costs no ZooKeeper write."""
        if new != self.current:
            self.version = self.store.write_status(self.name, new, self.version, self.owner)
            self.current = new

    def event(self, message: str, **extra: Any) -> None:
        self.store.append_event(self.name, self.source, message, **extra)
