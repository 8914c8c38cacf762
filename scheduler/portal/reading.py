"""What the portal reads from ZooKeeper, and when that reading is stale.

A page is built from a reading: the data, when it was read, and whether ZooKeeper and a
leader answered. A read that fails or does not answer in time never turns into an error page
nor into old data shown as current: the page keeps the last reading and says it is stale,
since when and why. Reads run in one thread of their own with a deadline, so a ZooKeeper
that hangs holds no request (a kazoo call without a connection waits for one).

The fleet is read at most once per `max_age` seconds whoever asks, shared by every open tab,
and from copies of each job's record, status and owner that ZooKeeper's watches keep fresh
(`scheduler.master.caches`): after the first read of 5,000 jobs (15,000 nodes), a read is a
listing and the nodes that changed since.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from common.errors import Unavailable
from common.store.clusterseen import ClusterSeen
from common.store.records import JobRecord, JobStatus, StableSpec
from common.store.zookeeper import Store
from common.telemetry.fleet import status_rows
from scheduler.master.caches import FleetCache

READ_DEADLINE = 3.0  # seconds a read may take before the page is served stale
FLEET_MAX_AGE = 2.0  # seconds a fleet reading is served before the next read
JOBS_REMEMBERED = 200  # job readings kept, to show stale when ZooKeeper is gone

T = TypeVar("T")


@dataclass(frozen=True)
class Reading(Generic[T]):
    """Data and how fresh it is. `data` is None when nothing could ever be read."""

    data: T | None
    read_at: float  # wall time of the read `data` comes from (0: never)
    leader: str | None  # the leading master at that read
    error: str = ""  # why the newest read failed; "" when `data` is that read's

    @property
    def stale(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True)
class Fleet:
    rows: list[dict[str, Any]]
    versions: dict[str, str]  # cluster -> Flink version, as the workers report it


@dataclass(frozen=True)
class JobData:
    record: JobRecord
    status: JobStatus
    owner: str | None
    writer_alive: bool
    override: dict[str, Any] | None
    events: list[dict[str, Any]]
    stable: StableSpec | None
    config_error: str
    version: str
    version_note: str = ""


class NoSuchJob(LookupError):
    """The job is not in ZooKeeper (its page answers 404)."""


@dataclass
class _Slot(Generic[T]):
    last: Reading[T]
    pending: Future[tuple[T, str | None, float]] | None = None
    pending_since: float = 0.0  # monotonic
    lock: threading.Lock = field(default_factory=threading.Lock)


class PortalReader:
    """Reads for the portal's pages from one store, with deadlines, shared and cached."""

    def __init__(self, store: Store, max_age: float = FLEET_MAX_AGE,
                 deadline: float = READ_DEADLINE, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.caches = FleetCache(store)
        self.max_age = max_age
        self.deadline = deadline
        self.clock = clock
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="portal-read")
        self.fleet_slot: _Slot[Fleet] = _Slot(Reading(None, 0.0, None, "not read yet"))
        self.job_slots: OrderedDict[str, _Slot[JobData]] = OrderedDict()
        self.slots_lock = threading.Lock()

    def warm(self) -> None:
        """Start the first read of the fleet now (a master calls it as it starts serving): it
        reads every job's record, status and owner, seconds for thousands of jobs."""
        self._submit(self.fleet_slot, self._read_fleet)

    def _submit(self, slot: _Slot[T], read: Callable[[], T]) -> Future[tuple[T, str | None, float]]:
        with slot.lock:
            if slot.pending is not None and slot.pending.done() and self._outdated(slot.pending):
                slot.pending = None  # a read nobody collected in time (the warm one, say)
            if slot.pending is None:
                slot.pending = self.pool.submit(self._timed, read)
                slot.pending_since = time.monotonic()
            return slot.pending

    def fleet(self) -> Reading[Fleet]:
        slot = self.fleet_slot
        if not slot.last.stale and self.clock() - slot.last.read_at < self.max_age:
            return slot.last
        return self._read(slot, self._read_fleet)

    def job(self, name: str) -> Reading[JobData]:
        with self.slots_lock:
            slot = self.job_slots.get(name)
            if slot is None:
                slot = _Slot(Reading(None, 0.0, None, "not read yet"))
                self.job_slots[name] = slot
                while len(self.job_slots) > JOBS_REMEMBERED:
                    self.job_slots.popitem(last=False)
            self.job_slots.move_to_end(name)
        return self._read(slot, lambda: self._read_job(name))

    def _read(self, slot: _Slot[T], read: Callable[[], T]) -> Reading[T]:
        """A new reading of `read`, or the last one marked stale with why. One read per slot
        at a time: a hung one is waited for by the next request, never started twice."""
        with slot.lock:
            late = slot.pending is not None and not slot.pending.done() and (
                time.monotonic() - slot.pending_since > self.deadline)
        if late:
            return self._stale(slot, self._unfinished(slot))
        pending = self._submit(slot, read)
        try:
            data, leader, read_at = pending.result(timeout=self.deadline)
        except FutureTimeout:
            return self._stale(slot, self._unfinished(slot))
        except NoSuchJob:
            with slot.lock:
                slot.pending = None
            raise
        except Exception as exc:
            with slot.lock:
                slot.pending = None
            return self._stale(slot, _described(exc))
        with slot.lock:
            if slot.pending is pending:
                slot.pending = None
            slot.last = Reading(data, read_at, leader)
            return slot.last

    def _outdated(self, done: Future[tuple[T, str | None, float]]) -> bool:
        try:
            _, _, read_at = done.result()
        except Exception:
            return True
        return self.clock() - read_at >= self.max_age

    def _unfinished(self, slot: _Slot[T]) -> str:
        took = time.monotonic() - slot.pending_since
        if slot.last.data is None:  # the first read: every node of every job, once
            return f"the first read is under way ({took:.0f}s so far); ask again shortly"
        return f"ZooKeeper has not answered a read for {took:.0f}s"

    def _stale(self, slot: _Slot[T], why: str) -> Reading[T]:
        last = slot.last
        slot.last = Reading(last.data, last.read_at, last.leader, why)
        return slot.last

    def _timed(self, read: Callable[[], T]) -> tuple[T, str | None, float]:
        if not self.store.connected:
            raise ConnectionError("not connected to ZooKeeper")
        started = self.clock()
        data = read()
        return data, self.store.leader_id(), started

    def _read_fleet(self) -> Fleet:
        rows = status_rows(self.store, cached=self.caches)
        versions: dict[str, str] = {}
        for cluster in sorted({row["cluster"] for row in rows if not row["ownCluster"]}):
            seen = self.store.cluster_seen(cluster)
            if isinstance(seen, ClusterSeen):
                versions[cluster] = seen.flink_version
        return Fleet(rows, versions)

    def _read_job(self, name: str) -> JobData:
        store = self.store
        record = store.job(name)
        if record is None:
            raise NoSuchJob(name)
        status, _ = store.status(name)
        owner = store.owner(name)
        cluster = str(record.cluster.get("metadata", {}).get("name", ""))
        seen = store.cluster_seen(cluster) if cluster else None
        version, note = "", ""
        if isinstance(seen, ClusterSeen):
            version = seen.flink_version
        elif isinstance(seen, Unavailable):
            note = seen.why
        return JobData(record=record, status=status, owner=owner[0] if owner else None,
                       writer_alive=status.worker in store.worker_ids(),
                       override=store.override(name), events=store.events(name),
                       stable=store.stable(name),
                       config_error=str(store.config_state().get("jobErrors", {}).get(name, "")),
                       version=version, version_note=note)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _described(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"reading ZooKeeper failed: {text}"[:300]
