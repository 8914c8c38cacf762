"""Who takes part: the masters' election, the registered workers, the leader's assignments
of jobs to workers, and the leader's record of its last config sync."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kazoo.exceptions import NodeExistsError, NoNodeError, NotEmptyError

from common.errors import ConflictError, StoreError
from common.store.nodes import Op, ZkNodes
from common.store.records import Fence, WorkerInfo, decode, encode

logger = logging.getLogger(__name__)

LEADER_PREFIX = "m-"


class Membership(ZkNodes):
    # -- leadership ----------------------------------------------------------------------
    def join_election(self, master_id: str) -> Fence:
        """A new contender node for this session; leadership is held while it is the lowest."""
        path = self.zk.create(
            self._path("leader", LEADER_PREFIX),
            master_id.encode("utf-8"),
            ephemeral=True,
            sequence=True,
            makepath=True,
        )
        return Fence(path=path, version=0, session_id=self.session_id, holder=master_id)

    def contenders(self) -> list[tuple[str, str]]:
        """(node name, master id) in election order; the first one leads."""
        try:
            children = self.zk.get_children(self._path("leader"))
        except NoNodeError:
            return []
        contenders = []
        for child in sorted(c for c in children if c.startswith(LEADER_PREFIX)):
            try:
                data, _ = self.zk.get(self._path("leader", child))
            except NoNodeError:
                continue
            contenders.append((child, data.decode("utf-8", "replace")))
        return contenders

    def leader_id(self) -> str | None:
        contenders = self.contenders()
        return contenders[0][1] if contenders else None

    def fence_holds(self, fence: Fence) -> bool:
        """True while the fence node exists, in this very session (not known, so False,
        while the connection is suspended)."""
        if self.session_id != fence.session_id or not self.connected:
            return False
        stat = self.zk.exists(fence.path)
        return bool(stat and stat.ephemeralOwner == fence.session_id)

    def leads(self, fence: Fence) -> bool:
        """True when the fence node is the lowest contender (the caller checks it still holds)."""
        try:
            children = self.zk.get_children(self._path("leader"))
        except NoNodeError:
            return False
        lowest = min((c for c in children if c.startswith(LEADER_PREFIX)), default=None)
        return lowest is not None and fence.path.endswith("/" + lowest)

    def config_state(self) -> dict[str, Any]:
        """What the leader's last sync found: errors, commit, blocked removals."""
        try:
            data, _ = self.zk.get(self._path("config"))
        except NoNodeError:
            return {}
        try:
            return decode(data, "config state")
        except StoreError as exc:
            logger.warning("ignoring config state: %s", exc)
            return {}

    def allow_removal(self, by: str) -> None:
        """An operator's consent to the next sync's removals, past the removal guard."""
        path = self._path("allow-removal")
        payload = encode({"by": by, "at": time.time()})
        try:
            self.zk.create(path, payload)
        except NodeExistsError:
            self.zk.set(path, payload)

    def removal_allowed(self) -> dict[str, Any] | None:
        try:
            data, _ = self.zk.get(self._path("allow-removal"))
        except NoNodeError:
            return None
        return decode(data, "allow-removal")

    def consume_removal_allowance(self, fence: Fence) -> None:
        path = self._path("allow-removal")
        try:
            self._commit(fence, lambda t: t.delete(path))
        except ConflictError:
            pass

    def put_config_state(self, value: dict[str, Any], fence: Fence) -> None:
        path = self._path("config")
        data = encode(value)
        if self.zk.exists(path) is None:
            self._commit(fence, lambda t: t.create(path, data))
        else:
            self._commit(fence, lambda t: t.set_data(path, data))

    def worker_ids(self) -> set[str]:
        try:
            return set(self.zk.get_children(self._path("workers")))
        except NoNodeError:
            return set()

    # -- workers -------------------------------------------------------------------------
    def register_worker(self, info: WorkerInfo) -> None:
        path = self._path("workers", info.id)
        try:
            self.zk.create(path, encode(info.to_json()), ephemeral=True, makepath=True)
        except NodeExistsError:
            _, stat = self.zk.get(path)
            if stat.ephemeralOwner != self.session_id:
                raise StoreError(f"worker id {info.id} is already registered") from None

    def unregister_worker(self, worker_id: str) -> None:
        try:
            self.zk.delete(self._path("workers", worker_id))
        except NoNodeError:
            pass

    def workers(self) -> dict[str, WorkerInfo]:
        try:
            children = sorted(self.zk.get_children(self._path("workers")))
        except NoNodeError:
            return {}
        workers = {}
        paths = [self._path("workers", worker_id) for worker_id in children]
        for worker_id, data in zip(children, self._get_many(paths), strict=True):
            if data is None:
                continue
            try:
                workers[worker_id] = WorkerInfo.from_json(worker_id, decode(data, worker_id))
            except (StoreError, TypeError, ValueError) as exc:
                logger.warning("skipping worker %s: %s", worker_id, exc)
        return workers

    def watch_members(self, on_change: Callable[[], None]) -> None:
        """`on_change` runs whenever a master joins or leaves the election or a worker
        registers or goes away (in the store's thread: it must not block)."""
        for part in ("leader", "workers"):
            self.watches.children(self._path(part), lambda children: on_change())

    def watch_assignments(self, worker_id: str, on_change: Callable[[], None],
                          active: Callable[[], bool] = lambda: True) -> None:
        """`on_change` runs whenever the worker's assignments change."""
        self.watches.children(self._assignments_path(worker_id),
                              lambda children: on_change(), active)

    def ensure_worker_dir(self, worker_id: str) -> None:
        self.zk.ensure_path(self._assignments_path(worker_id))

    # -- assignments (leader writes, workers read) ---------------------------------------
    def _assignments_path(self, worker_id: str) -> str:
        return self._path("assignments", worker_id)

    def assigned_names(self, worker_id: str) -> set[str]:
        try:
            return set(self.zk.get_children(self._assignments_path(worker_id)))
        except NoNodeError:
            return set()

    def assignment_epochs(self, worker_id: str, names: Iterable[str]) -> dict[str, int]:
        """Each assignment's epoch (its node's czxid, a global and rising zxid), in one
        pipelined round; an assignment gone meanwhile is left out."""
        base = self._assignments_path(worker_id)
        pending = [(name, self.zk.exists_async(f"{base}/{name}")) for name in names]
        epochs = {}
        for name, result in pending:
            stat = result.get()
            if stat is not None:
                epochs[name] = int(stat.czxid)
        return epochs

    def assignments(self) -> dict[str, set[str]]:
        """Job names assigned to each worker id (one pipelined round)."""
        try:
            worker_ids = self.zk.get_children(self._path("assignments"))
        except NoNodeError:
            return {}
        pending = [self.zk.get_children_async(self._assignments_path(w)) for w in worker_ids]
        found: dict[str, set[str]] = {}
        for worker_id, result in zip(worker_ids, pending, strict=True):
            try:
                found[worker_id] = set(result.get())
            except NoNodeError:
                continue
        return found

    def apply_assignments(
        self,
        assign: list[tuple[str, str]],
        unassign: list[tuple[str, str]],
        fence: Fence,
    ) -> None:
        """Create and delete assignment nodes in fenced transactions of bounded size."""
        payload = encode({"assignedAt": time.time(), "by": fence.holder})
        targets = sorted({w for w, _ in assign})
        exists = [self.zk.exists_async(self._assignments_path(w)) for w in targets]
        ops: list[Op] = [  # a missing worker directory is created fenced, too
            ("create", self._assignments_path(w), b"")
            for w, found in zip(targets, exists, strict=True) if found.get() is None
        ]
        ops += [("delete", f"{self._assignments_path(w)}/{n}", None) for w, n in unassign]
        ops += [("create", f"{self._assignments_path(w)}/{n}", payload) for w, n in assign]
        self._commit_ops(fence, ops)

    def drop_worker_dir(self, worker_id: str, fence: Fence) -> None:
        try:
            self._commit(fence, lambda t: t.delete(self._assignments_path(worker_id)))
        except (ConflictError, NotEmptyError):
            pass
