"""What a job's supervisor needs of the store, as an interface.

`common.store.Store` is the ZooKeeper implementation (the only code that knows the layout);
`common.memstore.MemoryStore` keeps the same in memory, for tests of the worker's core
without a ZooKeeper server.
"""

from __future__ import annotations

from typing import Any, Protocol

from common.records import Fence, JobRecord, JobStatus


class Unknown:
    """A watched value that could not be read: the reader reads it itself until a watch
    reports again."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = Unknown()


class JobWatcher(Protocol):
    """Told about every change of one job's record, override and commands (a value, None when
    the node is gone, or UNKNOWN when it could not be read), until it is closed."""

    @property
    def closed(self) -> bool: ...
    def record_changed(self, record: JobRecord | Unknown | None) -> None: ...
    def override_changed(self, override: dict[str, Any] | Unknown | None) -> None: ...
    def commands_changed(self, waiting: bool) -> None: ...


class JobStore(Protocol):
    def job(self, name: str) -> JobRecord | None: ...
    def status(self, name: str) -> tuple[JobStatus, int]: ...
    def write_status(self, name: str, status: JobStatus, version: int, owner: Fence) -> int: ...
    def append_event(self, name: str, source: str, message: str, **extra: Any) -> None: ...
    def override(self, name: str) -> dict[str, Any] | None: ...
    def commands(self, name: str) -> list[tuple[str, dict[str, Any]]]: ...
    def delete_command(self, name: str, node: str) -> None: ...
    def release_ownership(self, fence: Fence) -> None: ...
    def watch_job(self, name: str, watcher: JobWatcher) -> None: ...

