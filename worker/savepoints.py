"""Savepoints of one job: scheduled or requested, taken without blocking the poll loop.

A savepoint is triggered in one cycle and collected in a later one; completed savepoints are
kept in the job's status, and those beyond `retain` are disposed of through Flink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from apscheduler.schedulers.base import BaseScheduler

from common.errors import FlinkError
from common.spec.schedules import schedule_trigger
from common.store.records import Checkpoint, JobStatus, SavepointResult
from worker.decide.steps import NOT_RUNNING_YET

logger = logging.getLogger(__name__)


class SavepointTarget(Protocol):
    """What taking and disposing of savepoints needs of a deployment target."""

    def trigger_savepoint(self, job_id: str, directory: str | None = None) -> str: ...
    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, str]: ...
    def dispose_savepoint(self, path: str) -> str: ...


@dataclass
class Pending:
    trigger_id: str
    job_id: str
    reason: str
    command: str = ""  # the operator's command node, when one asked for it
    started: float = field(default_factory=time.time)
    requested: float = field(default_factory=time.monotonic)  # first asked for


RETRY_WINDOW = 60.0  # how long such a savepoint is asked for again


@dataclass
class Outcome:
    """What a step changed: the new status (or None) and sentences for the event log."""

    status: JobStatus | None = None
    events: list[str] = field(default_factory=list)
    # The requested savepoint's end, for whoever waits on it: the first event says it.
    result: SavepointResult | None = None
    command: str = ""


class SavepointKeeper:
    def __init__(self, name: str, scheduler: BaseScheduler | None,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self.scheduler = scheduler
        self.wake = wake  # the supervisor acts on a request at once, not at its next poll
        self.schedule: str | None = None
        self.pending: Pending | None = None
        self._requested: tuple[str, str] | None = None  # reason, command node
        self._requested_at = 0.0
        self._lock = threading.Lock()

    def configure(self, schedule: str | None) -> None:
        """Follow the spec's schedule; the scheduler only raises a flag the cycle acts on."""
        if schedule == self.schedule or self.scheduler is None:
            return
        job_key = f"savepoint-{self.name}"
        if self.scheduler.get_job(job_key):
            self.scheduler.remove_job(job_key)
        if schedule:
            self.scheduler.add_job(self.request, schedule_trigger(schedule), id=job_key,
                                   args=["scheduled"], coalesce=True, max_instances=1)
        self.schedule = schedule

    def close(self) -> None:
        self.configure(None)

    def request(self, reason: str, since: float | None = None, command: str = "") -> None:
        with self._lock:
            if self._requested is None:
                self._requested = (reason, command)
                self._requested_at = time.monotonic() if since is None else since
        self.wake()

    def step(self, client: SavepointTarget, status: JobStatus, job_id: str, retain: int,
             directory: str | None = None) -> Outcome:
        """Advance: collect a pending savepoint, or trigger a requested one (into `directory`,
        else the cluster's default)."""
        if self.pending is not None:
            return self._collect(client, status, retain)
        with self._lock:
            asked, self._requested = self._requested, None
            requested = self._requested_at
        if asked is None:
            return Outcome()
        reason, command = asked
        try:
            trigger_id = client.trigger_savepoint(job_id, directory)
        except FlinkError as exc:
            return Outcome(events=[f"savepoint ({reason}) of attempt {status.attempt} "
                                   f"could not be triggered: {exc}"],
                           result=SavepointResult.FAILED, command=command)
        self.pending = Pending(trigger_id, job_id, reason, command, requested=requested)
        return Outcome()

    def _collect(self, client: SavepointTarget, status: JobStatus, retain: int) -> Outcome:
        assert self.pending is not None
        pending = self.pending
        try:
            result, detail = client.savepoint_result(pending.job_id, pending.trigger_id)
        except FlinkError as exc:
            self.pending = None
            return Outcome(events=[f"savepoint ({pending.reason}) lost track: {exc}"],
                           result=SavepointResult.FAILED, command=pending.command)
        if result == "IN_PROGRESS":
            return Outcome()
        self.pending = None
        if result == "FAILED":
            if any(hint in detail for hint in NOT_RUNNING_YET) and (
                    time.monotonic() - pending.requested < RETRY_WINDOW):
                self.request(pending.reason, since=pending.requested, command=pending.command)
                return Outcome()  # asked again next cycle, once the tasks run
            return Outcome(events=[f"savepoint ({pending.reason}) failed: {detail}"],
                           result=SavepointResult.FAILED, command=pending.command)
        taken = Checkpoint.savepoint(detail, status)
        kept = [*status.savepoints, taken]
        events = [f"savepoint ({pending.reason}) completed: {detail}"]
        while len(kept) > retain:
            oldest = kept.pop(0)
            if oldest.path == status.restored_from:
                kept.insert(0, oldest)  # the running attempt may still read its files
                break
            events.append(self._dispose(client, oldest))
        return Outcome(status=status.with_changes(savepoints=tuple(kept)), events=events,
                       result=SavepointResult.COMPLETED, command=pending.command)

    def _dispose(self, client: SavepointTarget, savepoint: Checkpoint) -> str:
        try:
            client.dispose_savepoint(savepoint.path)
        except FlinkError as exc:
            return f"savepoint {savepoint.path} beyond retention could not be disposed: {exc}"
        return f"disposed savepoint {savepoint.path} (beyond retention)"
