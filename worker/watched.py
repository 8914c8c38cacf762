"""What a supervisor needs from the store besides its own status, kept fresh by watches.

A job's record, its operator override and whether commands wait change rarely; reading them
every poll would cost three reads per job per second (15,000/s for 5,000 jobs). The store's
watches deliver each change once instead, and wake the supervisor so that it acts at once.
Until a watch has reported, or after a read failed, the value is read directly by the cycle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from common.errors import Unavailable
from common.store.interfaces import JobStore
from common.store.pushed import PushedEvent
from common.store.records import JobRecord


class WatchedJob:
    def __init__(self, store: JobStore, name: str, on_change: Callable[[], None]) -> None:
        self.store = store
        self.name = name
        self.on_change = on_change
        self._closed = False
        self._lock = threading.Lock()
        self._record: JobRecord | None = None
        self._record_known = False
        self._override: dict[str, Any] | None = None
        self._override_known = False
        self._commands_waiting = True  # unknown until the watch reports: look
        self._pushed: PushedEvent | None = None  # the newest status change Flink pushed

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self.store.watch_job(self.name, self)

    def close(self) -> None:
        self._closed = True  # each watch is not armed again after its next event

    # -- what the cycle reads --------------------------------------------------------------
    def record(self) -> JobRecord | None:
        with self._lock:
            if self._record_known:
                return self._record
        return self.store.job(self.name)

    def override(self) -> dict[str, Any] | None:
        with self._lock:
            if self._override_known:
                return self._override
        return self.store.override(self.name)

    def commands_waiting(self) -> bool:
        return self._commands_waiting

    def pushed(self) -> PushedEvent | None:
        """The newest status change Flink pushed for the job."""
        with self._lock:
            return self._pushed

    # -- what the watches report (in the store's threads; nothing here blocks) ---------------
    def record_changed(self, record: JobRecord | Unavailable | None) -> None:
        with self._lock:
            if isinstance(record, Unavailable):
                self._record, self._record_known = None, False
            else:
                self._record, self._record_known = record, True
        self._changed()

    def override_changed(self, override: dict[str, Any] | Unavailable | None) -> None:
        with self._lock:
            if isinstance(override, Unavailable):
                self._override, self._override_known = None, False
            else:
                self._override, self._override_known = override, True
        self._changed()

    def commands_changed(self, waiting: bool) -> None:
        self._commands_waiting = waiting
        self._changed()

    def pushed_changed(self, event: PushedEvent | Unavailable | None) -> None:
        if not isinstance(event, PushedEvent):
            return  # nothing pushed, or not usable: polling watches the job as before
        with self._lock:
            self._pushed = event
        self._changed()

    def _changed(self) -> None:
        if not self._closed:
            self.on_change()
