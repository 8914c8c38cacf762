"""One owned job's supervisor: a thread that observes, decides and acts, cycle after cycle.

Observe (`worker/observe.py`: the record, the status, the attempt in Flink, commands, the
clock), decide (`worker/decide.py`, a pure function returning a typed decision), act
(`worker/act.py`, against the deployment target and the store). The decision's sentence is
logged when it changes.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from apscheduler.schedulers.base import BaseScheduler

from common.errors import ConflictError, FencedError, FlinkschedError, StoreError
from common.store.interfaces import JobStore
from common.store.records import CommandKind, Fence, JobRecord, JobStatus, StableSpec
from worker.act import ActGuard, Actor
from worker.decide.decisions import Gather, Outcome
from worker.decide.moves import left_behind
from worker.decide.observation import Clock, Observation, RestartCommand, RollbackRequest
from worker.decide.rules import decide
from worker.observe import Observer, restart_command, system_clock
from worker.savepoints import SavepointKeeper
from worker.statekeeping import Runner, StateKeeper
from worker.targets import DeploymentTarget, Targets
from worker.watched import WatchedJob

logger = logging.getLogger(__name__)

MAX_UNREACHABLE_WAIT = 5.0
QUIET_WAIT = 5.0  # between cycles of an attempt the listing watches: it wakes them sooner
FAST_POLL = 0.1  # while an attempt is being stopped or a savepoint taken
PUSH_RECHECK = 0.02  # Flink pushed a state its REST API does not show yet
MAX_STEPS = 4  # decisions in one cycle: gather, decide again, a refused submission, again


class JobSupervisor:
    def __init__(
        self,
        store: JobStore,
        name: str,
        owner: Fence,
        guard: ActGuard,
        targets: Targets,
        scheduler: BaseScheduler | None = None,
        clock: Callable[[], Clock] = system_clock,
        keeping: Runner | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.owner = owner
        self.guard = guard
        self.targets = targets
        self.poll_interval = 1.0
        self.last_message = ""
        self.fenced = False
        self._wake = threading.Event()  # a change in ZooKeeper or Flink: run the next cycle now
        self._stop = threading.Event()
        self.savepoints = SavepointKeeper(name, scheduler, wake=self._wake.set)
        self.observer = Observer(name, owner.holder, self._wake.set, clock)
        self.actor = Actor(store, name, owner, guard, self.observer, self.savepoints,
                           StateKeeper(name, self._wake.set, clock, keeping))
        self.watched = WatchedJob(store, name, self._wake.set)
        self._target: tuple[dict[str, Any], DeploymentTarget] | None = None
        # The cluster the job moved from (its document's JSON) and its target; None as the
        # target once nothing of the job's is left there.
        self._previous_target: tuple[str, DeploymentTarget | None] | None = None
        self._refused = ""  # a submission refused in a cycle's last step: Flink's reason
        # The desired record, the stable spec and the record made of both (`_running_record`).
        self._stable_record: tuple[JobRecord, StableSpec, JobRecord] | None = None
        self._thread = threading.Thread(target=self.run, name=f"job-{name}", daemon=True)

    # -- thread --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.watched.close()
        for made in (self._target, self._previous_target):
            if made is not None and made[1] is not None:
                made[1].unwatch()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def cluster(self) -> tuple[str, DeploymentTarget] | None:
        """The job's FlinkCluster's name and the target it runs on, once a cycle made it."""
        made = self._target
        if made is None:
            return None
        return str((made[0].get("metadata") or {}).get("name", "")), made[1]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def release(self) -> None:
        """Hand the job back: clear this worker from its status, then drop ownership."""
        try:
            status, version = self.store.status(self.name)
            if status.worker == self.owner.holder:
                self.store.write_status(self.name, status.with_changes(worker=""), version,
                                        self.owner)
        except StoreError as exc:
            logger.info("job %s: status not cleared on release: %s", self.name, exc)
        self.store.release_ownership(self.owner)

    def _begin(self) -> None:
        """In the supervisor's own thread, so a worker taking many jobs starts them at once."""
        # A new generation, a removal, an override or a command acts at once, not a poll
        # later. Until a watch reports (or where one could not be set), each cycle reads the
        # value itself: slower to notice, not wrong.
        try:
            self.watched.start()
        except StoreError as exc:  # the client is closing: the cycles read for themselves
            logger.warning("job %s: watches not set: %r", self.name, exc)
        try:
            self.actor.event(f"owned by worker {self.owner.holder}")
        except StoreError as exc:
            logger.warning("job %s: ownership event not recorded: %r", self.name, exc)

    def run(self) -> None:
        self._begin()
        wait = self.poll_interval
        while not self._stop.is_set():
            if not self.guard.can_act():
                self._stop.wait(0.1)
                continue
            outcome = self._guarded_cycle()
            if outcome is None:
                break
            if outcome.message != self.last_message:
                self._log_decision(outcome.message)
                self.last_message = outcome.message
            wait = min(MAX_UNREACHABLE_WAIT, wait * 2) if outcome.backoff else self.poll_interval
            if self.observer.quiet or outcome.quiet:  # the listing wakes this thread
                wait = max(wait, QUIET_WAIT)
            if self.actor.stop_trigger or self.actor.current.stopping or self.savepoints.pending:
                wait = min(wait, FAST_POLL)  # an attempt is ending or a savepoint is running
            if outcome.retry_in is not None:
                wait = min(wait, outcome.retry_in)
                self.observer.push_still_news()
            if outcome.wake_in is not None:
                wait = min(wait, outcome.wake_in)
            if outcome.soon:
                wait = PUSH_RECHECK
            self._wake.wait(wait)
            self._wake.clear()
        self.savepoints.close()
        if self._target is not None:
            self._target[1].unwatch()

    def _guarded_cycle(self) -> Outcome | None:
        """One cycle, its failures turned into what the log says; None: ownership is lost."""
        try:
            return self.cycle()
        except FencedError as exc:
            logger.warning("job %s: stopping, ownership lost: %s", self.name, exc)
            self.fenced = True
            return None
        except ConflictError as exc:
            self.actor.stale = True
            return Outcome(f"status changed concurrently, re-reading: {exc}")
        except StoreError as exc:
            self.actor.stale = True
            return Outcome(f"ZooKeeper error: {exc!r}")
        except FlinkschedError as exc:
            return Outcome(f"error: {exc}")
        except Exception:
            logger.exception("job %s: unexpected error in cycle", self.name)
            return Outcome("unexpected error (see the log)")

    def _log_decision(self, message: str) -> None:
        """One line per decision, naming the job, its attempt and the attempt's Flink job id
        (also as fields of the JSON log format)."""
        attempt, job_id = self.actor.current.attempt, self.actor.current.flink_job_id or "-"
        logger.info("job %s attempt %d (%s): %s", self.name, attempt, job_id, message,
                    extra={"job": self.name, "attempt": attempt, "flinkJobId": job_id})

    # -- one cycle -----------------------------------------------------------------------
    def cycle(self) -> Outcome:
        desired = self.watched.record()
        if desired is None:
            self._stop.set()
            return Outcome("job no longer exists in ZooKeeper")
        status = self.actor.status()
        record = self._running_record(desired, status)
        self.poll_interval = record.model.pollInterval
        self.savepoints.configure(record.model.savepoints.schedule)
        target = self.target(record)
        # Where the status's attempt runs: the cluster the job moved from, until it ended.
        running_on = self._attempt_target(record, status) or target
        with running_on.turn():
            restart, rollback = self._waiting_commands()
            observation = self.observer.observe(
                record, status, running_on, self.actor.memory(), self.watched.override(),
                restart, stop_failure=self.actor.take_stop_failure(),
                savepoint_pending=self.savepoints.pending is not None,
                pushed=self.watched.pushed())
            observation = replace(observation, stable=self.actor.stable,
                                  rollback_request=rollback)
            if self._refused:
                observation = observation.after_rejection(status, self._refused)
                self._refused = ""
            return self._decide_and_act(observation, record, running_on, target)

    def _decide_and_act(self, observation: Observation, record: JobRecord,
                        target: DeploymentTarget, submit_to: DeploymentTarget) -> Outcome:
        outcome = Outcome("no decision")
        for _ in range(MAX_STEPS):
            decision = decide(observation)
            if isinstance(decision.action, Gather):
                observation = self.observer.gather(observation, decision.action.need, target)
                continue
            outcome = self.actor.carry_out(decision, record, target, submit_to)
            if not outcome.rejected:
                return outcome
            observation = observation.after_rejection(self.actor.current, outcome.rejected)
        # Refused in the last step: the next cycle starts from the refusal, or it would
        # choose the refused point again.
        self._refused = outcome.rejected
        return outcome

    def _running_record(self, desired: JobRecord, status: JobStatus) -> JobRecord:
        """The record the job runs: the desired one, or while the status says that generation
        was rolled back, the last stable generation's spec (`worker.decide.rollback`)."""
        rollback, stable = status.rollback, self.actor.stable
        if (rollback is None or stable is None or rollback.from_generation != desired.generation
                or stable.generation != rollback.to_generation):
            return desired
        made = self._stable_record
        if made is None or made[0] is not desired or made[1] is not stable:
            made = (desired, stable, stable.as_record(desired))
            self._stable_record = made
        return made[2]

    def target(self, record: JobRecord) -> DeploymentTarget:
        """The job's deployment target, made again only when the record's cluster changed."""
        if self._target is None or self._target[0] is not record.cluster:
            if self._target is not None:
                self._target[1].unwatch()
            self._target = (record.cluster, self.targets.for_job(
                self.name, record, lambda: self.poll_interval))
        return self._target[1]

    def _attempt_target(self, record: JobRecord, status: JobStatus) -> DeploymentTarget | None:
        """The cluster the job moved from while its attempt is known there (None: the job's
        own cluster). Attempts left alive there beside it are cancelled; once nothing of
        the job's runs there, what is left is released and the cluster no longer asked."""
        previous = self._previous(record)
        if previous is None:
            return None
        try:
            with previous.turn():
                listed = previous.attempts()
        except FlinkschedError as exc:
            # Whether the attempt still runs there is unknown: never start one beside it.
            logger.info("job %s: cluster it moved from not readable: %s", self.name, exc)
            return previous
        left = left_behind(listed, status.flink_job_id)
        if left.runs_there:
            return previous
        for orphan in left.orphans:
            if self.guard.can_act():
                previous.cancel(orphan)
                self.actor.event(f"cancelled attempt {orphan} on the cluster the job moved "
                                 "from: the job runs on its new cluster")
        if left.done:
            previous.release()
            previous.unwatch()
            assert self._previous_target is not None  # made by `_previous`
            self._previous_target = (self._previous_target[0], None)
        return None

    def _previous(self, record: JobRecord) -> DeploymentTarget | None:
        """The target of the cluster the record says the job moved from, made once per
        such cluster; None when there is none or it was found done with."""
        document = record.previous_cluster
        if document is None or document == record.cluster:
            return None
        key = json.dumps(document, sort_keys=True)
        if self._previous_target is None or self._previous_target[0] != key:
            moved_from = replace(record, cluster=document, previous_cluster=None)
            self._previous_target = (key, self.targets.for_job(
                self.name, moved_from, lambda: self.poll_interval))
        return self._previous_target[1]

    def _waiting_commands(self) -> tuple[RestartCommand | None, RollbackRequest | None]:
        """One read of the job's commands: savepoint requests queued and unknown commands
        reported (both deleted); the oldest restart and the oldest rollback returned, each kept
        until carried out."""
        if not self.watched.commands_waiting():
            return None, None
        restart, rollback = None, None
        for node, command in self.store.commands(self.name):
            kind, by = command.get("command"), command.get("by", "someone")
            if kind == CommandKind.RESTART:
                restart = restart or restart_command(node, command)
                continue
            if kind == CommandKind.ROLLBACK:
                rollback = rollback or RollbackRequest(node, str(by))
                continue
            if kind == CommandKind.SAVEPOINT:
                self.savepoints.request(f"requested by {by}", command=node)
                self.actor.event(f"savepoint requested by {by}", command=node)
            else:
                self.actor.event(f"ignored unknown command {kind!r} from {by}", command=node)
            self.store.delete_command(self.name, node)
        return restart, rollback
