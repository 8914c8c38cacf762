"""Observing one job: everything a decision needs, read from ZooKeeper, Flink and disk.

The observer owns how often each thing is read (checkpoint statistics as often as the job
checkpoints, Flink's restart count every 5 s near a restart and every 60 s when quiet,
orphans every 10 s) and hands the decision one immutable `Observation`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from common.errors import FlinkschedError, FlinkUnreachable, StorageUnavailable
from common.flink.jobids import flink_job_id
from common.flink.jobstate import JobState
from common.objstore.storage import Storage
from common.store.pushed import PushedEvent
from common.store.records import RUNNING_PHASES, JobRecord, JobStatus, Phase
from worker.decide.observation import (
    CheckpointStats,
    Clock,
    FlinkView,
    Memory,
    Need,
    Observation,
    Pushed,
    RestartCommand,
    SavepointState,
    StopProgress,
)
from worker.decide.steps import desired_hold
from worker.restore import from_flink_stats, gather, rejection, reports_placeholder
from worker.targets import STORAGE, DeploymentTarget

logger = logging.getLogger(__name__)

CHECKPOINT_STATS_INTERVAL = 3.0  # Flink refreshes checkpoint statistics every 3 s by default
CHECKPOINT_STATS_MAX_INTERVAL = 30.0  # however seldom the job checkpoints
ORPHAN_CHECK_INTERVAL = 10.0
RESTART_COUNT_INTERVAL = 5.0  # within a minute of Flink restarting the attempt itself
# Otherwise: a restart lasting a poll interval shows in the listing (RESTARTING) and brings
# the count to the 5 s pace; this catches the quicker ones a listing missed.
QUIET_RESTART_COUNT_INTERVAL = 60.0
QUIET_AFTER = 60.0
HELD_RECHECK = 10.0  # a job with no usable restore point looks for one again this often
# A pushed state Flink's REST API has not shown within this long is let go (logged): the
# REST API is the truth, and a push it never confirms must not keep the worker looking.
PUSH_CONFIRM_WINDOW = 2.0
# Phases whose attempt the shared listing watches.
LISTED_PHASES = (Phase.SUBMITTING, *RUNNING_PHASES, Phase.RESTARTING)


def stats_interval(record: JobRecord) -> float:
    """How often a RUNNING attempt's checkpoint statistics are read: as often as it
    checkpoints, between 3 s and 30 s (a restart reads them afresh anyway)."""
    interval = record.model.checkpoint_interval or 0.0
    return min(max(interval, CHECKPOINT_STATS_INTERVAL), CHECKPOINT_STATS_MAX_INTERVAL)


def system_clock() -> Clock:
    return Clock(time.time(), time.monotonic())


class Observer:
    def __init__(self, name: str, owner: str, wake: Callable[[], None],
                 clock: Callable[[], Clock] = system_clock) -> None:
        self.name = name
        self.clock = clock
        self.owner = owner
        self.wake = wake
        self.quiet = False  # the listing watches the attempt and wakes the supervisor
        self._checked: dict[str, float] = {}  # monotonic time each periodic read last ran
        self._submitted = float("-inf")  # monotonic time of this supervisor's last submission
        self._created = float("-inf")  # ... when that submission created the attempt
        self._unsettled = float("-inf")  # the last time Flink showed the attempt restarting
        self._push: PushedEvent | None = None  # the newest push seen, and when it came
        self._push_arrived = float("-inf")
        self._push_settled = True  # confirmed by the REST API, or let go

    # -- timers the actor moves ------------------------------------------------------------
    def submitting(self, target: DeploymentTarget, job_id: str) -> None:
        """A submission is on its way: older listings cannot show it, and a fresh attempt has
        no restarts to count nor checkpoints yet."""
        self._submitted = self._created = self.clock().mono
        target.watch(job_id, self.wake)  # woken when a listing shows it
        self._checked["restart-count"] = self._checked["stats"] = self._submitted

    def adopted(self) -> None:
        """An attempt this supervisor did not create: it may have restarted, or checkpointed."""
        self._created = float("-inf")
        self._checked.pop("restart-count", None)
        self._checked.pop("stats", None)

    def rechecked_held(self) -> None:
        self._checked["held"] = self.clock().mono

    def _due(self, check: str, interval: float, *, take: bool = True) -> bool:
        now = self.clock().mono
        if now - self._checked.get(check, float("-inf")) < interval:
            return False
        if take:
            self._checked[check] = now
        return True

    # -- one observation ---------------------------------------------------------------------
    def observe(self, record: JobRecord, status: JobStatus, target: DeploymentTarget,
                memory: Memory, override: dict[str, Any] | None,
                command: RestartCommand | None, *, stop_failure: str = "",
                savepoint_pending: bool = False,
                pushed: PushedEvent | None = None) -> Observation:
        self.quiet = False
        clock = self.clock()
        held_due = status.phase == Phase.NO_RESTORE_POINT and self._due(
            "held", HELD_RECHECK, take=False)
        memory = replace(memory, held_recheck_due=held_due)
        observation = Observation(
            owner=self.owner, record=record, status=status, clock=clock,
            hold=desired_hold(record, override), command=command, memory=memory,
            flink=self._flink(record, status, target, memory, savepoint_pending, pushed))
        stop = self._stop(status, target, memory, stop_failure)
        return observation if stop is None else replace(observation, stop=stop)

    def gather(self, observation: Observation, need: Need,
               target: DeploymentTarget) -> Observation:
        """The restore points a start needs, and the attempts Flink lists (to number it)."""
        candidates = gather(need, observation.record, observation.status, target)
        return observation.with_restore(candidates, self._attempts(target))

    def _attempts(self, target: DeploymentTarget) -> dict[str, str]:
        try:
            return target.attempts(since=self._submitted)
        except FlinkschedError:
            return {}

    def _flink(self, record: JobRecord, status: JobStatus, target: DeploymentTarget,
               memory: Memory, savepoint_pending: bool,
               pushed: PushedEvent | None) -> FlinkView:
        if status.attempt == 0:
            return FlinkView(listed=self._attempts(target))
        job_id = status.flink_job_id or flink_job_id(self.name, status.attempt)
        news = self._news(pushed, job_id)
        view = self._attempt_view(record, status, target, memory, savepoint_pending, job_id,
                                  direct=news is not None)
        return view if news is None else self._settle(news, view)

    def _news(self, pushed: PushedEvent | None, job_id: str) -> Pushed | None:
        """A push about the attempt that no REST read has confirmed yet."""
        if pushed is None or pushed.job_id != job_id:
            return None
        now = self.clock().mono
        if pushed != self._push:
            self._push, self._push_arrived, self._push_settled = pushed, now, False
        if self._push_settled:
            return None
        return Pushed(pushed.state, pushed.cause, now - self._push_arrived)

    def push_still_news(self) -> None:
        """The cycle chose to wait and look again soon: the push it saw is the next one's news
        too (how the failure came to be known is said when the attempt starts)."""
        self._push_settled = False

    def _settle(self, news: Pushed, view: FlinkView) -> FlinkView:
        if view.unreachable or news.confirmed_by(view.state):
            self._push_settled = True
        elif news.waited >= PUSH_CONFIRM_WINDOW:
            self._push_settled = True
            logger.info("job %s: Flink pushed %s, its REST API still shows %s after %.1fs; "
                        "following the REST API", self.name, news.state, view.state,
                        news.waited)
            return view
        return replace(view, pushed=news)

    def _attempt_view(self, record: JobRecord, status: JobStatus, target: DeploymentTarget,
                      memory: Memory, savepoint_pending: bool, job_id: str,
                      direct: bool) -> FlinkView:
        """The attempt's state; `direct`: asked of the REST API, not the shared listing."""
        target.watch(job_id, self.wake)
        # Only this supervisor's submissions and stops change an attempt's state; a listing
        # asked for before the submission, or during a stop, is not evidence. Nor is one
        # older than a push.
        listable = (status.phase in LISTED_PHASES and not status.stopping
                    and not memory.stop_trigger and not savepoint_pending and not direct)
        try:
            text, from_listing = target.state(job_id, listable=listable, since=self._submitted)
        except FlinkUnreachable as exc:
            return FlinkView(unreachable=str(exc))
        state = JobState.parse(text) if text is not None else None
        # The listing wakes the supervisor when the attempt's state changes: no need to look
        # before the quiet wait is out.
        self.quiet = from_listing and state is not None and not state.terminal
        if state is not JobState.RUNNING and not (state is not None and state.starting):
            self._unsettled = self.clock().mono
        if state is None or state.terminal:
            root = ""
            if state is JobState.FAILED:
                root = self._read(lambda: target.root_exception(job_id), "")
            return FlinkView(state=state, root_cause=root, listed=self._attempts(target))
        listed = self._attempts(target) if self._due("orphans", ORPHAN_CHECK_INTERVAL) else None
        quiet = self.clock().mono - self._unsettled > QUIET_AFTER
        count = None
        if self._due("restart-count", QUIET_RESTART_COUNT_INTERVAL if quiet
                     else RESTART_COUNT_INTERVAL):
            count = self._read(lambda: target.restart_count(job_id), None)
        if state is not JobState.RUNNING:
            return FlinkView(state=state, listed=listed, restart_count=count)
        return FlinkView(state=state, listed=listed, restart_count=count,
                         checkpoints=self._checkpoints(record, status, target, job_id),
                         previous_cause=self._previous_cause(status, target))

    def _checkpoints(self, record: JobRecord, status: JobStatus, target: DeploymentTarget,
                     job_id: str) -> CheckpointStats | None:
        interval = stats_interval(record)
        # An attempt this supervisor submitted less than an interval ago is read when the
        # interval is out, not on its way to RUNNING: its restore point is in the status
        # already, and its own first checkpoints wait at most that interval to be recorded.
        # An attempt it did not submit (taken over, adopted) is read at once.
        fresh = self.clock().mono - self._created < interval
        if not (self._due("stats", interval) or (status.phase not in RUNNING_PHASES and not fresh)):
            return None
        stats = self._read(lambda: target.checkpoints(job_id), None)
        if stats is None:
            return None
        return CheckpointStats(tuple(from_flink_stats(stats)), reports_placeholder(stats))

    def _previous_cause(self, status: JobStatus, target: DeploymentTarget) -> str:
        """Flink serves exception history from a cache (web.refresh-interval): a failure's
        root cause can come after the restart it caused."""
        if not status.root_cause_pending or status.attempt < 2:
            return ""
        previous = flink_job_id(self.name, status.attempt - 1)
        return str(self._read(lambda: target.root_exception(previous), ""))

    def _stop(self, status: JobStatus, target: DeploymentTarget, memory: Memory,
              failure: str) -> StopProgress | None:
        if failure:
            return StopProgress(SavepointState.LOST, failure)
        if not memory.stop_trigger:
            return None
        try:
            result, detail = target.savepoint_result(status.flink_job_id, memory.stop_trigger)
        except FlinkschedError as exc:
            return StopProgress(SavepointState.LOST, f"stop with savepoint lost track: {exc}")
        state = {"IN_PROGRESS": SavepointState.IN_PROGRESS, "FAILED": SavepointState.FAILED}.get(
            result, SavepointState.COMPLETED)
        problem = checked(detail, target.storage) if state is SavepointState.COMPLETED else None
        if problem is not None:  # the attempt ended; its newest checkpoint is the way on
            return StopProgress(SavepointState.LOST, f"stop with savepoint reported a "
                                f"savepoint that cannot be restored: {problem}")
        return StopProgress(state, detail)

    @staticmethod
    def _read(read: Callable[[], Any], default: Any) -> Any:
        """A read this cycle can do without: a failed one is as if not read (the next cycle
        reads again), never a reason to skip the decision."""
        try:
            return read()
        except FlinkschedError as exc:
            logger.debug("read left out this cycle: %s", exc)
            return default


def restart_command(node: str, command: dict[str, Any]) -> RestartCommand:
    """A restart command node's fields, typed, with its path checked on this worker's disk (the
    CLI checked it too; the disk may differ here)."""
    path = str(command.get("fromPath") or "")
    return RestartCommand(node=node, by=str(command.get("by", "someone")),
                          from_empty=bool(command.get("fromEmpty")), from_path=path,
                          path_problem=checked(path) if path else None)


def checked(path: str, storage: Storage = STORAGE) -> str | None:
    """What is wrong with a point Flink or an operator named; storage that does not answer
    now is said so (the point may be fine)."""
    try:
        return rejection(path, storage)
    except StorageUnavailable as exc:
        return f"its storage cannot be read now: {exc}"
