"""The leader's copies of every job's status and owner, for the metrics export.

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

from common.store.records import JobStatus
from common.store.zookeeper import Store

T = TypeVar("T")
# Reads these jobs' nodes, calling `changed(name)` once when one read here changes.
Read = Callable[[list[str], Callable[[str], None]], dict[str, T]]


class WatchedCache(Generic[T]):
    """A copy of one kind of node per job, kept fresh by watches."""

    def __init__(self, store: Store, read: Read[T]) -> None:
        self.store = store
        self._read = read
        self._lock = threading.Lock()
        self._known: dict[str, T] = {}
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
            stale = sorted(n for n in wanted if n not in self._known or n in self._changed)
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
                else:  # no node yet: read again next pass
                    self._known.pop(name, None)
            return {n: self._known[n] for n in names if n in self._known}

    def clear(self) -> None:
        with self._lock:
            self._known.clear()
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
        super().__init__(store, lambda names, changed: store.owners(names, changed=changed))
