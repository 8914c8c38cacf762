"""The job store in memory: the same interface and the same guarantees as the ZooKeeper store
(status writes are compare-and-set and fenced by ownership; watchers hear of every change),
for tests of the worker's core without a ZooKeeper server.

A worker's session is a number: `expire_session(worker)` ends it, and with it every fence the
worker held, as a lost ZooKeeper session does.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from common.errors import ConflictError, FencedError, StoreError
from common.store.interfaces import JobWatcher
from common.store.pushed import PushedEvent
from common.store.records import MAX_EVENTS, Event, Fence, JobRecord, JobStatus, StableSpec


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, JobRecord] = {}
        self._statuses: dict[str, tuple[JobStatus, int]] = {}
        self._stable: dict[str, StableSpec] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._overrides: dict[str, dict[str, Any]] = {}
        self._commands: dict[str, dict[str, dict[str, Any]]] = {}
        self._owners: dict[str, Fence] = {}
        self._sessions: dict[str, int] = {}
        self._watchers: dict[str, list[JobWatcher]] = {}
        self._sequence = itertools.count()
        self._removal: dict[str, Any] | None = None
        self._config: dict[str, Any] = {}
        self._status_watches: dict[str, list[Callable[[str], None]]] = {}

    # -- the leader's side (DesiredStateStore) ----------------------------------------------
    def join_election(self, master_id: str) -> Fence:
        return Fence(f"memory/leader/{master_id}", 0, self.session(master_id), master_id)

    def _leads(self, fence: Fence) -> None:
        if self._sessions.get(fence.holder) != fence.session_id:
            raise FencedError(f"{fence.path}: the session that held it is gone")

    def jobs(self) -> dict[str, JobRecord]:
        with self._lock:
            return dict(self._records)

    def statuses(self, names: list[str],
                 changed: Callable[[str], None] | None = None) -> dict[str, JobStatus]:
        """`changed(name)` is called once when a status read here changes (a one-shot watch)."""
        with self._lock:
            found = {n: self._statuses[n][0] for n in names if n in self._statuses}
            if changed is not None:
                for name in found:
                    self._status_watches.setdefault(name, []).append(changed)
            return found

    def _status_changed(self, name: str) -> None:
        with self._lock:
            fired = self._status_watches.pop(name, [])
        for changed in fired:
            changed(name)

    def put_jobs(self, writes: list[tuple[JobRecord, bool, str]], fence: Fence) -> None:
        with self._lock:
            self._leads(fence)
            for record, create, _ in writes:
                if create == (record.name in self._records):
                    raise ConflictError(f"job {record.name}: "
                                        f"{'exists' if create else 'does not exist'}")
        for record, _, event in writes:
            self.put_job(record)
            if event:
                self.append_event(record.name, fence.holder, event)

    def delete_job(self, name: str, fence: Fence) -> None:
        with self._lock:
            self._leads(fence)
        self._drop(name)

    def allow_removal(self, by: str) -> None:
        with self._lock:
            self._removal = {"by": by, "at": time.time()}

    def removal_allowed(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._removal) if self._removal is not None else None

    def consume_removal_allowance(self, fence: Fence) -> None:
        with self._lock:
            self._leads(fence)
            self._removal = None

    def config_state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._config)

    def put_config_state(self, value: dict[str, Any], fence: Fence) -> None:
        with self._lock:
            self._leads(fence)
            self._config = dict(value)

    # -- what operators and tests do ---------------------------------------------------------
    def put_job(self, record: JobRecord) -> None:
        with self._lock:
            created = record.name not in self._records
            self._records[record.name] = record
            if created:
                self._statuses[record.name] = (JobStatus(), 0)
                self._events[record.name] = []
                self._commands[record.name] = {}
        self._tell(record.name, lambda w: w.record_changed(record))

    def _drop(self, name: str) -> None:
        with self._lock:
            for table in (self._records, self._statuses, self._events, self._commands,
                          self._owners, self._overrides, self._stable):
                table.pop(name, None)
        self._tell(name, lambda w: w.record_changed(None))

    def set_override(self, name: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._overrides[name] = dict(value)
        self._tell(name, lambda w: w.override_changed(dict(value)))

    def clear_override(self, name: str) -> None:
        with self._lock:
            self._overrides.pop(name, None)
        self._tell(name, lambda w: w.override_changed(None))

    def add_command(self, name: str, command: str, by: str, **fields: Any) -> str:
        node = f"c-{next(self._sequence):010d}"
        with self._lock:
            if name not in self._records:
                raise StoreError(f"job {name} does not exist")
            self._commands[name][node] = {"command": command, "by": by, "at": time.time(),
                                          **fields}
        self._tell(name, lambda w: w.commands_changed(True))
        return node

    def restore_status(self, name: str, status: JobStatus) -> None:
        """ZooKeeper came back from an older copy of its data: the status is an older one."""
        with self._lock:
            _, version = self._statuses[name]
            self._statuses[name] = (status, version + 1)
        self._status_changed(name)

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events.get(name, []))

    # -- sessions and ownership ------------------------------------------------------------
    def session(self, worker: str) -> int:
        with self._lock:
            return self._sessions.setdefault(worker, next(self._sequence))

    def expire_session(self, worker: str) -> None:
        """The worker's session ends: every fence it held is gone; its next session is new."""
        with self._lock:
            self._sessions.pop(worker, None)
            for name, fence in list(self._owners.items()):
                if fence.holder == worker:
                    del self._owners[name]

    def claim_ownership(self, name: str, worker: str, epoch: int) -> Fence:
        with self._lock:
            held = self._owners.get(name)
            if held is not None and self._holds(held):
                if held.holder != worker:
                    raise ConflictError(f"job {name} is owned by worker {held.holder}")
                return held
            if name not in self._records:
                raise StoreError(f"job {name} does not exist")
            fence = Fence(f"memory/{name}/owner", 0, self.session(worker), worker, epoch)
            self._owners[name] = fence
            return fence

    def _holds(self, fence: Fence) -> bool:
        return self._sessions.get(fence.holder) == fence.session_id and (
            self._owners.get(fence.path.split("/")[1]) == fence)

    # -- the JobStore interface --------------------------------------------------------------
    def job(self, name: str) -> JobRecord | None:
        with self._lock:
            return self._records.get(name)

    def status(self, name: str) -> tuple[JobStatus, int]:
        with self._lock:
            return self._statuses.get(name, (JobStatus(), -1))

    def stable(self, name: str) -> StableSpec | None:
        with self._lock:
            return self._stable.get(name)

    def write_stable(self, name: str, stable: StableSpec, owner: Fence) -> None:
        with self._lock:
            if not self._holds(owner):
                raise FencedError(f"job {name}: ownership by {owner.holder} is gone")
            self._stable[name] = stable

    def write_status(self, name: str, status: JobStatus, version: int, owner: Fence) -> int:
        with self._lock:
            if not self._holds(owner):
                raise FencedError(f"job {name}: ownership by {owner.holder} is gone")
            current = self._statuses.get(name)
            if current is None:
                raise StoreError(f"job {name} does not exist")
            if current[1] != version:
                raise ConflictError(f"job {name}: status changed under us")
            self._statuses[name] = (status, version + 1)
        self._status_changed(name)
        return version + 1

    def append_event(self, name: str, source: str, message: str, **extra: Any) -> None:
        with self._lock:
            if name in self._events:
                event = Event(time.time(), source, message, extra).to_json()
                self._events[name] = [*self._events[name], event][-MAX_EVENTS:]

    def override(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._overrides.get(name)
            return dict(found) if found is not None else None

    def commands(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return sorted((n, dict(c)) for n, c in self._commands.get(name, {}).items())

    def delete_command(self, name: str, node: str) -> None:
        with self._lock:
            self._commands.get(name, {}).pop(node, None)
            waiting = bool(self._commands.get(name))
        self._tell(name, lambda w: w.commands_changed(waiting))

    def release_ownership(self, fence: Fence) -> None:
        with self._lock:
            if self._holds(fence):
                name = fence.path.split("/")[1]
                del self._owners[name]

    def watch_job(self, name: str, watcher: JobWatcher) -> None:
        with self._lock:
            self._watchers.setdefault(name, []).append(watcher)
            record, override = self._records.get(name), self._overrides.get(name)
            waiting = bool(self._commands.get(name))
        watcher.record_changed(record)
        watcher.override_changed(dict(override) if override is not None else None)
        watcher.commands_changed(waiting)
        watcher.pushed_changed(None)

    def push(self, name: str, event: PushedEvent) -> None:
        """What Flink's status listener would push for the job."""
        self._tell(name, lambda w: w.pushed_changed(event))

    def _tell(self, name: str, call: Any) -> None:
        with self._lock:
            watchers = [w for w in self._watchers.get(name, []) if not w.closed]
            self._watchers[name] = watchers
        for watcher in watchers:
            call(watcher)
