"""The leader's copy of every job's status for the metrics export.

The first pass reads every status and leaves a ZooKeeper watch on each; later passes read only
the statuses whose watch fired since. In steady state a status changes a few times an hour,
so a pass over 5,000 jobs reads a handful of nodes instead of 5,000.

Watches survive a reconnection within the ZooKeeper session (the server replays what was
missed); a lost session loses them, so the copy is dropped and read again in full.
"""

from __future__ import annotations

import threading

from common.records import JobStatus
from common.store import Store


class StatusCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._known: dict[str, JobStatus] = {}
        self._changed: set[str] = set()
        self.reads = 0  # statuses read from ZooKeeper so far (for the benchmark and tests)
        self._listening = False

    def statuses(self, names: list[str]) -> dict[str, JobStatus]:
        """The status of each job in `names` that has one."""
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
            read = self.store.statuses(stale, changed=self._changed_status) if stale else {}
        except Exception:
            with self._lock:  # not read: read again next pass
                self._changed.update(stale)
            raise
        with self._lock:
            self.reads += len(stale)
            for name in stale:
                if name in read:
                    self._known[name] = read[name]
                else:  # no status yet: read again next pass
                    self._known.pop(name, None)
            return {n: self._known[n] for n in names if n in self._known}

    def clear(self) -> None:
        with self._lock:
            self._known.clear()
            self._changed.clear()

    def _changed_status(self, name: str) -> None:
        with self._lock:
            self._changed.add(name)
