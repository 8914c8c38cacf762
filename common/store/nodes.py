"""The ZooKeeper store's base: paths under the root, the session, fenced transactions and
the one way of watching. Only the store's modules (this, `membership`, `store`) know the layout.

Every write that needs an entitlement (leadership, ownership) is a transaction that also
checks the entitling node, so a process that lost its session cannot write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError, RolledBackError

from common.errors import ConflictError, FencedError, StoreError
from common.store.listeners import StateListeners
from common.store.records import Fence
from common.store.watches import Watches

logger = logging.getLogger(__name__)

TRANSACTION_OPS = 200  # ops per multi-op transaction, well inside jute.maxbuffer
Op = tuple[str, str, bytes | None]  # ("create" | "set" | "delete", path, data)


class ZkNodes:
    def __init__(self, client: KazooClient, root: str = "/flinksched") -> None:
        self.zk = client
        self.root = root.rstrip("/") or "/flinksched"
        self.listeners = StateListeners(client)
        self.watches = Watches(client, self.listeners)
        self._held_session = -1

    def add_state_listener(self, listener: Callable[[Any], Any]) -> None:
        """A kazoo state listener (called in kazoo's connection thread: it may record the state
        or hand work on, never call the client), kept on a client that replaces this one."""
        self.listeners.add(listener)

    def listeners_busy_for(self, now: float | None = None) -> float:
        """How long a state listener has been running (a wedged client's: for good)."""
        return self.listeners.busy_for(now)

    def replace_client(self, client: KazooClient) -> None:
        """Work with `client` from now on (the session keeper's new one): its listeners and
        watches move to it; its session is a new one, so every fence held so far is void."""
        self.zk = client
        self.listeners.move_to(client)
        self.watches.move_to(client)

    # -- paths ---------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def job_path(self, name: str) -> str:
        return self._path("jobs", name)

    def status_path(self, name: str) -> str:
        return self._path("jobs", name, "status")

    def _job_of_path(self, path: str, child: str) -> str | None:
        """The job a path of its `child` node (status, owner) belongs to (None for any
        other path)."""
        prefix, suffix = self._path("jobs") + "/", "/" + child
        if not (path.startswith(prefix) and path.endswith(suffix)):
            return None
        return path[len(prefix):-len(suffix)] or None

    def ensure_layout(self) -> None:
        for part in ("leader", "workers", "jobs", "assignments", "overrides", "events",
                     "listeners", "clusters"):
            self.zk.ensure_path(self._path(part))

    @property
    def session_id(self) -> int:
        """The session this client holds; -1 before its first and once it is lost.

        A suspended connection still holds its session (the server keeps it until it
        expires, and the client resumes it when it reconnects in time): kazoo names no
        session while suspended, so the last one it named is kept until kazoo says LOST.
        """
        client_id = self.zk.client_id
        if client_id:
            self._held_session = int(client_id[0])
        elif self.zk.state == KazooState.LOST:
            self._held_session = -1
        return self._held_session

    @property
    def connected(self) -> bool:
        return bool(self.zk.connected)

    def on_session_lost(self, callback: Callable[[], None]) -> None:
        """Called (in the connection's thread: it must not block) when the session is lost,
        and with it every watch the session held."""
        self.watches.on_session_lost(callback)

    # -- fenced writes -------------------------------------------------------------------
    def _check_fence_session(self, fence: Fence) -> None:
        """A fenced write needs the fence's session, and a connection to write in."""
        if self.session_id != fence.session_id:
            raise FencedError(f"{fence.path}: the session that held it is gone")
        if not self.connected:
            raise StoreError(f"{fence.path}: not connected to ZooKeeper (the session may "
                             "still be held)")

    def _commit(self, fence: Fence, build: Callable[[Any], None]) -> None:
        """Run the ops `build` adds in one transaction that also checks the fence node."""
        self._check_fence_session(fence)
        transaction = self.zk.transaction()
        transaction.check(fence.path, fence.version)
        build(transaction)
        self._check_results(fence, transaction.commit())

    def _commit_ops(self, fence: Fence, ops: list[Op]) -> None:
        """Many ops in fenced transactions of bounded size, sent pipelined (one round trip).

        ZooKeeper applies one session's requests in order, so a later chunk may rely on an
        earlier one; when a chunk fails, the chunks before it stay applied.
        """
        self._check_fence_session(fence)
        pending = []
        for start in range(0, len(ops), TRANSACTION_OPS):
            transaction = self.zk.transaction()
            transaction.check(fence.path, fence.version)
            for op, path, data in ops[start:start + TRANSACTION_OPS]:
                if op == "create":
                    transaction.create(path, data or b"")
                elif op == "set":
                    transaction.set_data(path, data or b"")
                else:
                    transaction.delete(path)
            pending.append(transaction.commit_async())
        for result in pending:
            self._check_results(fence, result.get())

    def _check_results(self, fence: Fence, results: list[Any]) -> None:
        failures = [r for r in results if isinstance(r, Exception)]
        if not failures:
            return
        first = results[0]
        if isinstance(first, Exception) and not isinstance(first, RolledBackError):
            raise FencedError(f"{fence.path}: no longer held ({type(first).__name__})")
        real = [f for f in failures if not isinstance(f, RolledBackError)]
        raise ConflictError(f"transaction failed: {', '.join(type(f).__name__ for f in real)}")

    def _get_many(self, paths: list[str],
                  watch: Callable[[Any], None] | None = None) -> list[bytes | None]:
        """Node data for many paths in one pipelined round (None where a node is missing),
        leaving `watch` on each node that exists."""
        pending = [self.zk.get_async(path, watch=watch) for path in paths]
        found: list[bytes | None] = []
        for result in pending:
            try:
                data, _ = result.get()
                found.append(data)
            except NoNodeError:
                found.append(None)
        return found

    def _children(self, path: str) -> list[str]:
        try:
            return sorted(self.zk.get_children(path))
        except NoNodeError:
            return []

