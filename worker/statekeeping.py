"""What a job keeps in storage: measured, and its earlier attempts' checkpoints deleted once
they are superseded (`worker.decide.retention` decides which), off the supervisor's thread.

A RUNNING job's supervisor asks each cycle; the work runs when the attempt changed, or it
completed its first checkpoint, and otherwise every MEASURE_EVERY seconds. Its result (the
`StoredState` for the status, events for the log) is collected by a later cycle. Storage
that does not answer costs the job nothing but a log line: the work is tried again later.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from common.errors import FlinkschedError
from common.flink.jobids import name_prefix
from common.flink.versions import CLAIM_MODE
from common.objstore.storage import Storage, local
from common.sizes import human_bytes
from common.store.records import JobRecord, JobStatus, StoredState
from worker.decide.observation import Clock
from worker.decide.restore_rules import own_checkpoint
from worker.decide.retention import attempt_states, claim_mode, prune
from worker.observe import system_clock
from worker.restore import checkpoint_dir

logger = logging.getLogger(__name__)

MEASURE_EVERY = 600.0  # seconds between measurements of a job whose attempt did not change
RETRY_AFTER = 60.0  # after storage did not answer
THREADS = 2  # storage requests of all the worker's jobs, at most this many at once


class StateTarget(Protocol):
    """What keeping state needs of a deployment target."""

    @property
    def storage(self) -> Storage: ...
    def config(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Kept:
    stored: StoredState | None  # None: nothing measured (no checkpoint directory it sees)
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class Work:
    """Everything the work needs, read in the supervisor's cycle."""

    name: str
    attempt: int
    own_checkpoint: bool
    retain: int
    protected: tuple[str, ...]
    savepoints: tuple[str, ...]
    job_config: dict[str, str] = field(default_factory=dict)


def work_of(record: JobRecord, status: JobStatus) -> Work:
    spec = record.model
    own = own_checkpoint(status)
    protected = (status.last_checkpoint.path if status.last_checkpoint else "",
                 *(s.path for s in status.savepoints), spec.job.initialSavepointPath or "",
                 "" if own else status.restored_from,
                 # the state a rollback of the generation on trial would restore
                 status.upgrade_point.path if status.upgrade_point else "")
    return Work(record.name, status.attempt, own,
                spec.checkpoints.retainAttempts, tuple(p for p in protected if p),
                tuple(s.path for s in status.savepoints), dict(spec.flinkConfiguration))


def keep(work: Work, target: StateTarget, clock: Callable[[], float] = time.time) -> Kept:
    """Delete what `retention.prune` allows, then measure what is left. StorageUnavailable
    or FlinkUnreachable when the storage or the cluster's configuration cannot be read."""
    cluster_config = target.config()
    directory = checkpoint_dir(work.job_config, cluster_config)
    if not directory or not _sees(directory):
        return Kept(None)
    storage = target.storage
    base = directory.rstrip("/")
    listing = storage.list(f"{base}/{name_prefix(work.name)}")
    states = attempt_states(work.name, base, ((e.uri, e.size) for e in listing))
    mode = claim_mode(CLAIM_MODE.read(work.job_config, cluster_config))
    plan = prune(states, work.attempt, work.own_checkpoint, work.retain, work.protected, mode)
    events = []
    deleted = [(state.attempt, *storage.delete_tree(state.uri)) for state in plan.delete]
    if deleted:
        objects, size = sum(d[1] for d in deleted), sum(d[2] for d in deleted)
        attempts = ", ".join(str(d[0]) for d in deleted)
        kept = ", ".join(str(s.attempt) for s in plan.kept) or "none"
        events.append(f"deleted the checkpoints of superseded attempts {attempts} "
                      f"({objects} objects, {human_bytes(size)}) under {base}; "
                      f"kept those of attempts {kept}")
    objects = sum(s.objects for s in plan.kept)
    size = sum(s.bytes for s in plan.kept)
    for path in work.savepoints:
        if _sees(path):
            found = storage.list(path.rstrip("/") + "/")
            objects += len(found)
            size += sum(e.size for e in found)
    stored = StoredState(objects, size, len(plan.kept), len(work.savepoints), clock(), base,
                         plan.held if plan.off else "")
    return Kept(stored, tuple(events))


def _sees(location: str) -> bool:
    """Object storage, or a local directory this process sees (a worker that does not mount
    Flink's volume measures nothing there, and deletes nothing)."""
    path = local(location)
    if path is None:
        return True
    try:
        return path.exists()
    except OSError:
        return False


class Runner(Protocol):
    def submit(self, work: Callable[[], Kept], done: Callable[[], None]) -> Future[Kept]: ...


class StateKeeper:
    """One job's: at most one piece of work in flight."""

    def __init__(self, name: str, wake: Callable[[], None] = lambda: None,
                 clock: Callable[[], Clock] = system_clock,
                 runner: Runner | None = None) -> None:
        self.name = name
        self.wake = wake
        self.clock = clock
        self.runner: Runner = runner or BACKGROUND
        self._future: Future[Kept] | None = None
        self._done: tuple[int, bool] | None = None  # the attempt the last work was for
        self._next = 0.0  # monotonic: when to measure again

    def step(self, record: JobRecord, target: StateTarget, status: JobStatus) -> Kept:
        """The result of finished work, or Kept(None) while there is none; starts work that
        is due."""
        future = self._future
        if future is not None:
            if not future.done():
                return Kept(None)
            self._future = None
            try:
                return future.result()
            except FlinkschedError as exc:
                logger.warning("job %s: what it keeps in storage was not measured (again in "
                               "%.0fs): %s", self.name, RETRY_AFTER, exc)
                self._next = self.clock().mono + RETRY_AFTER
                return Kept(None)
        key = (status.attempt, own_checkpoint(status))
        if key == self._done and self.clock().mono < self._next:
            return Kept(None)
        self._done, self._next = key, self.clock().mono + MEASURE_EVERY
        work = work_of(record, status)
        wall = self.clock().wall
        self._future = self.runner.submit(lambda: keep(work, target, lambda: wall), self.wake)
        return Kept(None)


class Background:
    """A few daemon threads doing storage work (a hung request never holds up an exit)."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._queue: queue.SimpleQueue[tuple[Callable[[], Kept], Future[Kept],
                                             Callable[[], None]]] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], Kept], done: Callable[[], None]) -> Future[Kept]:
        with self._lock:
            if not self._started:
                for number in range(self._threads):
                    threading.Thread(target=self._run, name=f"state-keeping-{number}",
                                     daemon=True).start()
                self._started = True
        future: Future[Kept] = Future()
        self._queue.put((work, future, done))
        return future

    def _run(self) -> None:
        while True:
            work, future, done = self._queue.get()
            try:
                future.set_result(work())
            except Exception as exc:  # handed to the supervisor, which logs it
                future.set_exception(exc)
            done()


class Inline:
    """Work done at once, in the caller's thread: a deterministic runner for the model."""

    def submit(self, work: Callable[[], Kept], done: Callable[[], None]) -> Future[Kept]:
        future: Future[Kept] = Future()
        try:
            future.set_result(work())
        except Exception as exc:
            future.set_exception(exc)
        return future


BACKGROUND = Background(THREADS)
