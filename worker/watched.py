"""What a supervisor needs from ZooKeeper besides its own status, kept fresh by watches.

A job's record, its operator override and whether commands wait change rarely; reading them
every poll would cost three reads per job per second (15,000/s for 5,000 jobs). Watches
deliver each change once instead, and wake the supervisor so that it acts at once. Until a
watch has reported, or after a read failed, the value is read directly by the cycle.

The watches are ZooKeeper's own one-shot watches, armed again from the event itself with
asynchronous calls: nothing here blocks or starts a thread. (kazoo's DataWatch and
ChildrenWatch recipes start a thread per watch on every reconnection; a worker with a hundred
jobs on a flapping connection would pile up thousands of them.) Within a session the server
keeps them across reconnections; a new session drops every supervisor anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import KazooException, NoNodeError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import WatchedEvent

from common.errors import StoreError
from common.records import JobRecord, decode
from common.store import Store

logger = logging.getLogger(__name__)

UNKNOWN = object()  # a read failed: the cycle reads the value itself until a watch reports


class WatchedJob:
    def __init__(self, store: Store, name: str, on_change: Callable[[], None]) -> None:
        self.store = store
        self.name = name
        self.on_change = on_change
        self.closed = False
        self._lock = threading.Lock()
        self._record: JobRecord | None = None
        self._record_known = False
        self._override: dict[str, Any] | None = None
        self._override_known = False
        self._commands_waiting = True  # unknown until the watch reports: look

    def start(self) -> None:
        path = self.store.job_path(self.name)
        self._watch_data(path, self._on_record)
        self._watch_data(self.store.override_path(self.name), self._on_override)
        self._watch_children(path + "/commands", self._on_commands)

    def close(self) -> None:
        self.closed = True  # each watch is not armed again after its next event

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

    # -- arming (kazoo's threads call back; nothing blocks) ---------------------------------
    def _watch_data(self, path: str, apply: Callable[[object], None]) -> None:
        """`apply` gets the node's data (None: no node; UNKNOWN: the read failed) now and after
        every change. An exists-watch fires on creation, change and deletion alike."""
        if self.closed:
            return

        def changed(event: WatchedEvent) -> None:
            self._watch_data(path, apply)

        def read(result: IAsyncResult) -> None:
            try:
                data, _ = result.get()
                apply(data)
            except NoNodeError:
                apply(None)  # deleted since: the exists-watch reports it
            except KazooException:
                apply(UNKNOWN)

        def existing(result: IAsyncResult) -> None:
            try:
                stat = result.get()
            except KazooException:
                apply(UNKNOWN)
                return
            if stat is None:
                apply(None)
            else:
                self.store.zk.get_async(path).rawlink(read)

        self.store.zk.exists_async(path, watch=changed).rawlink(existing)

    def _watch_children(self, path: str, apply: Callable[[object], None]) -> None:
        if self.closed:
            return

        def changed(event: WatchedEvent) -> None:
            self._watch_children(path, apply)

        def listed(result: IAsyncResult) -> None:
            try:
                apply(result.get())
            except KazooException:
                apply(UNKNOWN)

        self.store.zk.get_children_async(path, watch=changed).rawlink(listed)

    # -- what the watches report -------------------------------------------------------------
    def _on_record(self, data: object) -> None:
        record, known = None, data is not UNKNOWN
        if isinstance(data, bytes):
            try:
                record = JobRecord.from_json(self.name, decode(data, f"job {self.name}"))
            except StoreError as exc:
                logger.warning("job %s: unreadable record, reading it again next cycle: %s",
                               self.name, exc)
                known = False
        with self._lock:
            self._record, self._record_known = record, known
        self._changed()

    def _on_override(self, data: object) -> None:
        value, known = None, data is not UNKNOWN
        if isinstance(data, bytes):
            try:
                value = decode(data, f"override of job {self.name}")
            except StoreError as exc:
                logger.warning("ignoring unreadable override of job %s: %s", self.name, exc)
        with self._lock:
            self._override, self._override_known = value, known
        self._changed()

    def _on_commands(self, children: object) -> None:
        # Unknown (the read failed) counts as waiting: the cycle looks for itself.
        self._commands_waiting = children is UNKNOWN or bool(children)
        self._changed()

    def _changed(self) -> None:
        if not self.closed:
            self.on_change()
