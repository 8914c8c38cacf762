"""The in-memory store keeps the ZooKeeper store's guarantees that the tests built on it rely
on: fenced compare-and-set status writes, and watches that report each change."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import ConflictError, FencedError, Unavailable
from common.store.memory import MemoryStore
from common.store.pushed import PushedEvent
from common.store.records import JobRecord, JobStatus, Phase
from tests.unit.decisions_util import NAME, record


class Seen:
    closed = False

    def __init__(self) -> None:
        self.records: list[JobRecord | Unavailable | None] = []
        self.commands: list[bool] = []

    def record_changed(self, value: JobRecord | Unavailable | None) -> None:
        self.records.append(value)

    def override_changed(self, value: dict[str, Any] | Unavailable | None) -> None:
        pass

    def commands_changed(self, waiting: bool) -> None:
        self.commands.append(waiting)

    def pushed_changed(self, event: PushedEvent | Unavailable | None) -> None:
        pass


def test_status_writes_are_fenced_and_compare_and_set() -> None:
    store = MemoryStore()
    store.put_job(record())
    owner = store.claim_ownership(NAME, "worker-a", 1)
    version = store.write_status(NAME, JobStatus(phase=Phase.RUNNING), 0, owner)
    with pytest.raises(ConflictError):
        store.write_status(NAME, JobStatus(), 0, owner)  # a stale version
    with pytest.raises(ConflictError):
        store.claim_ownership(NAME, "worker-b", 1)  # held by worker-a
    store.expire_session("worker-a")
    with pytest.raises(FencedError):
        store.write_status(NAME, JobStatus(), version, owner)
    assert store.claim_ownership(NAME, "worker-b", 2).holder == "worker-b"


def test_watchers_hear_of_every_change_and_a_status_read_watches_once() -> None:
    store, seen = MemoryStore(), Seen()
    changed: list[str] = []
    store.put_job(record())
    store.watch_job(NAME, seen)
    store.put_job(record(generation=2))
    node = store.add_command(NAME, "restart", "ops@host")
    store.delete_command(NAME, node)
    assert [r.generation for r in seen.records if isinstance(r, JobRecord)] == [1, 2]
    assert seen.commands == [False, True, False]
    store.statuses([NAME], changed=changed.append)
    owner = store.claim_ownership(NAME, "worker-a", 1)
    store.write_status(NAME, JobStatus(phase=Phase.RUNNING), 0, owner)
    store.write_status(NAME, JobStatus(phase=Phase.RESTARTING), 1, owner)
    assert changed == [NAME]  # once, until read again
