"""Copies of every job's status, owner and record: the leader's for the metrics export, a
portal's (`scheduler.portal.reading`) for the fleet page.

The first pass reads every node and leaves a ZooKeeper watch on each; later passes read only
the nodes whose watch fired since. In steady state a status changes a few times an hour and
an owner far less, so a pass over 5,000 jobs reads a handful of nodes instead of 10,000.

Watches survive a reconnection within the ZooKeeper session (the server replays what was
missed); a lost session loses them, so the copy is dropped and read again in full.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from common.store.records import JobRecord, JobStatus
from common.store.zookeeper import Store

T = TypeVar("T")
# Reads these jobs' nodes, calling `changed(name)` once when one read here changes.
Read = Callable[[list[str], Callable[[str], None]], dict[str, T]]


class WatchedCache(Generic[T]):
    """A copy of one kind of node per job, kept fresh by watches."""

    def __init__(self, store: Store, read: Read[T], absence_watched: bool = False) -> None:
        self.store = store
        self._read = read
        # The read leaves a watch on a node that does not exist too (an `exists`): its absence
        # is kept as known until the watch fires, instead of being read again every pass.
        self._absence_watched = absence_watched
        self._lock = threading.Lock()
        self._known: dict[str, T] = {}
        self._absent: set[str] = set()
        self._changed: set[str] = set()
        self.reads = 0  # nodes read from ZooKeeper so far (for the benchmark and tests)
        self._listening = False

    def values(self, names: list[str]) -> dict[str, T]:
        """The value of each job in `names` that has one."""
        if not self._listening:
            self.store.on_session_lost(self.clear)  # the session's watches are gone with it
            self._listening = True
        with self._lock:
            wanted = set(names)
            for gone in self._known.keys() - wanted:
                del self._known[gone]
            self._absent.intersection_update(wanted)
            stale = sorted(n for n in wanted if (n not in self._known and n not in self._absent)
                           or n in self._changed)
            self._changed.difference_update(stale)
        try:
            read = self._read(stale, self._changed_node) if stale else {}
        except Exception:
            with self._lock:  # not read: read again next pass
                self._changed.update(stale)
            raise
        with self._lock:
            self.reads += len(stale)
            for name in stale:
                if name in read:
                    self._known[name] = read[name]
                    self._absent.discard(name)
                else:  # no node yet: read again next pass, or when its watch fires
                    self._known.pop(name, None)
                    if self._absence_watched:
                        self._absent.add(name)
            return {n: self._known[n] for n in names if n in self._known}

    def clear(self) -> None:
        with self._lock:
            self._known.clear()
            self._absent.clear()
            self._changed.clear()

    def _changed_node(self, name: str) -> None:
        with self._lock:
            self._changed.add(name)


class StatusCache(WatchedCache[JobStatus]):
    def __init__(self, store: Store) -> None:
        super().__init__(store, lambda names, changed: store.statuses(names, changed=changed))

    def statuses(self, names: list[str]) -> dict[str, JobStatus]:
        return self.values(names)


class OwnerCache(WatchedCache[str]):
    """The worker each job's owner node names; a job without one is left out."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, lambda names, changed: store.owners(names, changed=changed),
                         absence_watched=True)  # an owner node is looked for with `exists`


class RecordCache(WatchedCache[JobRecord]):
    """Each job's record (its spec as the leader wrote it)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, lambda names, changed: store.records(names, changed=changed))


class FleetCache:
    """Records, statuses and owners of every job (`common.telemetry.fleet.FleetCaches`)."""

    def __init__(self, store: Store) -> None:
        self.record_cache = RecordCache(store)
        self.status_cache = StatusCache(store)
        self.owner_cache = OwnerCache(store)

    def records(self, names: list[str]) -> dict[str, JobRecord]:
        return self.record_cache.values(names)

    def statuses(self, names: list[str]) -> dict[str, JobStatus]:
        return self.status_cache.values(names)

    def owners(self, names: list[str]) -> dict[str, str]:
        return self.owner_cache.values(names)
