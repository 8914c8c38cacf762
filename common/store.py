"""The ZooKeeper store: the one module that knows the znode layout.

Layout under the root (default `/flinksched`):
    leader/m-<seq>                 ephemeral sequential, one per master; the lowest leads
    workers/<worker-id>            ephemeral, WorkerInfo
    jobs/<name>                    JobRecord (desired state, written by the leader)
    jobs/<name>/status             JobStatus (written by the owning worker)
    jobs/<name>/owner              ephemeral, the owning worker and its assignment epoch
    jobs/<name>/events             bounded list of recent events
    jobs/<name>/commands/c-<seq>   one-shot operator commands (restart, savepoint)
    overrides/<name>               operator override (suspended), beside the jobs so that
                                   one listing finds every override
    config                         the leader's last sync: config errors, commit, blocked
                                   removals (read by status and describe)
    allow-removal                  one-shot operator consent to a removal the guard withheld
    assignments/<worker-id>/<name> assignment; its czxid is the epoch (written by the leader)

Every write that needs an entitlement (leadership, ownership) is a transaction that also
checks the entitling node, so a process that lost its session cannot write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)

from common.errors import ConflictError, FencedError, StoreError
from common.records import (
    Event,
    Fence,
    JobRecord,
    JobStatus,
    WorkerInfo,
    decode,
    encode,
)

logger = logging.getLogger(__name__)

MAX_EVENTS = 100
LEADER_PREFIX = "m-"
TRANSACTION_OPS = 200  # ops per multi-op transaction, well inside jute.maxbuffer
Op = tuple[str, str, bytes | None]  # ("create" | "set" | "delete", path, data)


class Store:
    def __init__(self, client: KazooClient, root: str = "/flinksched") -> None:
        self.zk = client
        self.root = root.rstrip("/") or "/flinksched"

    # -- paths ---------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def job_path(self, name: str) -> str:
        return self._path("jobs", name)

    def status_path(self, name: str) -> str:
        return self._path("jobs", name, "status")

    def job_of_status_path(self, path: str) -> str | None:
        """The job a status path belongs to (None for any other path)."""
        prefix = self._path("jobs") + "/"
        if not (path.startswith(prefix) and path.endswith("/status")):
            return None
        return path[len(prefix):-len("/status")] or None

    def ensure_layout(self) -> None:
        for part in ("leader", "workers", "jobs", "assignments", "overrides"):
            self.zk.ensure_path(self._path(part))

    @property
    def session_id(self) -> int:
        client_id = self.zk.client_id
        return int(client_id[0]) if client_id else -1

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
        """True while the fence node exists, in this very session."""
        if self.session_id != fence.session_id:
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

    # -- fenced writes -------------------------------------------------------------------
    def _commit(self, fence: Fence, build: Callable[[Any], None]) -> None:
        """Run the ops `build` adds in one transaction that also checks the fence node."""
        if self.session_id != fence.session_id:
            raise FencedError(f"{fence.path}: the session that held it is gone")
        transaction = self.zk.transaction()
        transaction.check(fence.path, fence.version)
        build(transaction)
        self._check_results(fence, transaction.commit())

    def _commit_ops(self, fence: Fence, ops: list[Op]) -> None:
        """Many ops in fenced transactions of bounded size, sent pipelined (one round trip).

        ZooKeeper applies one session's requests in order, so a later chunk may rely on an
        earlier one; when a chunk fails, the chunks before it stay applied.
        """
        if self.session_id != fence.session_id:
            raise FencedError(f"{fence.path}: the session that held it is gone")
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

    # -- jobs: desired state (leader) -----------------------------------------------------
    def job_names(self) -> list[str]:
        try:
            return sorted(self.zk.get_children(self._path("jobs")))
        except NoNodeError:
            return []

    def job(self, name: str) -> JobRecord | None:
        try:
            data, _ = self.zk.get(self.job_path(name))
        except NoNodeError:
            return None
        return JobRecord.from_json(name, decode(data, f"job {name}"))

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

    def jobs(self) -> dict[str, JobRecord]:
        names = self.job_names()
        records = {}
        for name, data in zip(names, self._get_many([self.job_path(n) for n in names]),
                              strict=True):
            if data is None:
                continue
            try:
                records[name] = JobRecord.from_json(name, decode(data, f"job {name}"))
            except StoreError as exc:
                logger.warning("skipping job %s: %s", name, exc)
        return records

    def statuses(self, names: list[str],
                 watch: Callable[[Any], None] | None = None) -> dict[str, JobStatus]:
        """Status of many jobs in one pipelined round; unreadable ones are logged and skipped.
        `watch` is called once when a read status changes or is deleted."""
        found = {}
        paths = [self.status_path(name) for name in names]
        for name, data in zip(names, self._get_many(paths, watch), strict=True):
            if data is None:
                continue
            try:
                found[name] = JobStatus.from_json(decode(data, f"job {name} status"))
            except StoreError as exc:
                logger.warning("skipping status of job %s: %s", name, exc)
        return found

    def put_job(self, record: JobRecord, fence: Fence, create: bool) -> None:
        self.put_jobs([(record, create, "")], fence)

    def put_jobs(self, writes: list[tuple[JobRecord, bool, str]], fence: Fence) -> None:
        """Write job records, pipelined: (record, create, event). A new job's node is made
        with its status, events (holding the event) and commands nodes."""
        ops: list[Op] = []
        appended = []
        for record, create, event in writes:
            path = self.job_path(record.name)
            if create:
                events = [Event(time.time(), fence.holder, event).to_json()] if event else []
                ops += [("create", path, encode(record.to_json())),
                        ("create", path + "/status", encode(JobStatus().to_json())),
                        ("create", path + "/events", encode({"events": events})),
                        ("create", path + "/commands", b"")]
            else:
                ops.append(("set", path, encode(record.to_json())))
                if event:
                    appended.append((record.name, event))
        self._commit_ops(fence, ops)
        for name, event in appended:
            self.append_event(name, fence.holder, event)

    def delete_job(self, name: str, fence: Fence) -> None:
        """Delete a job's whole subtree, its assignments and override (fenced)."""
        path = self.job_path(name)
        ops: list[Op] = []
        for child in ("commands",):
            for node in self._children(f"{path}/{child}"):
                ops.append(("delete", f"{path}/{child}/{node}", None))
        for child in self._children(path):
            ops.append(("delete", f"{path}/{child}", None))
        ops.append(("delete", path, None))
        for worker_id, names in self.assignments().items():
            if name in names:
                ops.append(("delete", f"{self.assignments_path(worker_id)}/{name}", None))
        if self.zk.exists(self._path("overrides", name)):
            ops.append(("delete", self._path("overrides", name), None))
        self._commit_ops(fence, ops)

    def _children(self, path: str) -> list[str]:
        try:
            return sorted(self.zk.get_children(path))
        except NoNodeError:
            return []

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

    # -- jobs: status (owning worker) ----------------------------------------------------
    def status(self, name: str) -> tuple[JobStatus, int]:
        try:
            data, stat = self.zk.get(self.job_path(name) + "/status")
        except NoNodeError:
            return JobStatus(), -1
        return JobStatus.from_json(decode(data, f"job {name} status")), int(stat.version)

    def write_status(self, name: str, status: JobStatus, version: int, owner: Fence) -> int:
        """Compare-and-set the status while owning the job; returns the new version."""
        path = self.job_path(name) + "/status"
        try:
            self._commit(owner, lambda t: t.set_data(path, encode(status.to_json()), version))
        except ConflictError as exc:
            raise ConflictError(f"job {name}: status changed under us ({exc})") from exc
        return version + 1

    # -- ownership (worker) --------------------------------------------------------------
    def owner(self, name: str) -> tuple[str, int] | None:
        try:
            data, _ = self.zk.get(self.job_path(name) + "/owner")
        except NoNodeError:
            return None
        value = decode(data, f"job {name} owner")
        return str(value.get("worker", "")), int(value.get("epoch", 0))

    def claim_ownership(self, name: str, worker_id: str, epoch: int) -> Fence:
        """Become the job's owner (ephemeral node); ConflictError while another holds it."""
        claimed = self.claim_ownerships(worker_id, {name: epoch})[name]
        if isinstance(claimed, StoreError):
            raise claimed
        return claimed

    def claim_ownerships(self, worker_id: str,
                         epochs: dict[str, int]) -> dict[str, Fence | StoreError]:
        """Claim several jobs in one pipelined round: each job's Fence, or the ConflictError
        (another worker holds it) or StoreError (it does not exist) that kept it."""
        session = self.session_id
        pending = {}
        for name, epoch in epochs.items():
            payload = encode({"worker": worker_id, "epoch": epoch, "since": time.time()})
            path = self.job_path(name) + "/owner"
            pending[name] = (path, payload, self.zk.create_async(path, payload, ephemeral=True))
        claimed: dict[str, Fence | StoreError] = {}
        for name, (path, payload, result) in pending.items():
            try:
                result.get()
                claimed[name] = Fence(path, 0, session, worker_id, epochs[name])
            except NodeExistsError:
                data, stat = self.zk.get(path)
                if stat.ephemeralOwner != session:
                    holder = decode(data, f"job {name} owner").get("worker", "?")
                    claimed[name] = ConflictError(f"job {name} is owned by worker {holder}")
                    continue
                self.zk.set(path, payload, version=stat.version)  # ours, from this session
                claimed[name] = Fence(path, stat.version + 1, session, worker_id, epochs[name])
            except NoNodeError:
                claimed[name] = StoreError(f"job {name} does not exist")
        return claimed

    def release_ownership(self, fence: Fence) -> None:
        if self.session_id != fence.session_id:
            return
        try:
            self.zk.delete(fence.path, version=fence.version)
        except (NoNodeError, BadVersionError):
            pass

    # -- events --------------------------------------------------------------------------
    def append_event(self, name: str, source: str, message: str, **extra: Any) -> None:
        path = self.job_path(name) + "/events"
        event = Event(time.time(), source, message, extra).to_json()
        for _ in range(5):
            try:
                data, stat = self.zk.get(path)
                events = list(decode(data, f"job {name} events").get("events", []))
                events = [*events, event][-MAX_EVENTS:]
                self.zk.set(path, encode({"events": events}), version=stat.version)
                return
            except BadVersionError:
                continue
            except (NoNodeError, StoreError) as exc:
                logger.warning("job %s: event not recorded (%s): %s", name, exc, message)
                return

    def events(self, name: str) -> list[dict[str, Any]]:
        try:
            data, _ = self.zk.get(self.job_path(name) + "/events")
        except NoNodeError:
            return []
        return list(decode(data, f"job {name} events").get("events", []))

    # -- operator overrides (CLI writes; they win over git until removed) ----------------
    def override_path(self, name: str) -> str:
        return self._path("overrides", name)

    def override(self, name: str) -> dict[str, Any] | None:
        try:
            data, _ = self.zk.get(self.override_path(name))
        except NoNodeError:
            return None
        return decode(data, f"override of job {name}")

    def overrides(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Overrides of these jobs (or of all jobs): one listing, then only what exists."""
        try:
            present = set(self.zk.get_children(self._path("overrides")))
        except NoNodeError:
            return {}
        wanted = sorted(present if names is None else present.intersection(names))
        found = {}
        paths = [self._path("overrides", name) for name in wanted]
        for name, data in zip(wanted, self._get_many(paths), strict=True):
            if data is not None:
                try:
                    found[name] = decode(data, f"job {name} override")
                except StoreError as exc:
                    logger.warning("ignoring unreadable override: %s", exc)
        return found

    def set_override(self, name: str, value: dict[str, Any]) -> None:
        path = self._path("overrides", name)
        if not self.zk.exists(self.job_path(name)):
            raise StoreError(f"job {name} does not exist")
        try:
            self.zk.create(path, encode(value))
        except NodeExistsError:
            self.zk.set(path, encode(value))

    def clear_override(self, name: str) -> bool:
        try:
            self.zk.delete(self._path("overrides", name))
        except NoNodeError:
            return False
        return True

    def worker_ids(self) -> set[str]:
        try:
            return set(self.zk.get_children(self._path("workers")))
        except NoNodeError:
            return set()

    # -- one-shot commands (CLI writes, owning worker executes and deletes) ---------------
    def add_command(self, name: str, command: str, by: str, **fields: Any) -> str:
        payload = encode({"command": command, "by": by, "at": time.time(), **fields})
        try:
            path = self.zk.create(self.job_path(name) + "/commands/c-", payload, sequence=True,
                                  makepath=False)
        except NoNodeError:
            raise StoreError(f"job {name} does not exist") from None
        return str(path.rsplit("/", 1)[-1])

    def commands(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """Pending commands, oldest first; unreadable ones are logged and dropped."""
        base = self.job_path(name) + "/commands"
        try:
            children = sorted(self.zk.get_children(base))
        except NoNodeError:
            return []
        found = []
        for child in children:
            try:
                data, _ = self.zk.get(f"{base}/{child}")
                found.append((child, decode(data, f"job {name} command {child}")))
            except NoNodeError:
                continue
            except StoreError as exc:
                logger.warning("dropping unreadable command: %s", exc)
                self.delete_command(name, child)
        return found

    def delete_command(self, name: str, node: str) -> None:
        try:
            self.zk.delete(f"{self.job_path(name)}/commands/{node}")
        except NoNodeError:
            pass

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

    # -- assignments (leader writes, workers read) ---------------------------------------
    def assignments_path(self, worker_id: str) -> str:
        return self._path("assignments", worker_id)

    def assigned_names(self, worker_id: str) -> set[str]:
        try:
            return set(self.zk.get_children(self.assignments_path(worker_id)))
        except NoNodeError:
            return set()

    def assignment_epochs(self, worker_id: str, names: Iterable[str]) -> dict[str, int]:
        """Each assignment's epoch (its node's czxid, a global and rising zxid), in one
        pipelined round; an assignment gone meanwhile is left out."""
        base = self.assignments_path(worker_id)
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
        pending = [self.zk.get_children_async(self.assignments_path(w)) for w in worker_ids]
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
        exists = [self.zk.exists_async(self.assignments_path(w)) for w in targets]
        ops: list[Op] = [  # a missing worker directory is created fenced, too
            ("create", self.assignments_path(w), b"")
            for w, found in zip(targets, exists, strict=True) if found.get() is None
        ]
        ops += [("delete", f"{self.assignments_path(w)}/{n}", None) for w, n in unassign]
        ops += [("create", f"{self.assignments_path(w)}/{n}", payload) for w, n in assign]
        self._commit_ops(fence, ops)

    def drop_worker_dir(self, worker_id: str, fence: Fence) -> None:
        try:
            self._commit(fence, lambda t: t.delete(self.assignments_path(worker_id)))
        except (ConflictError, NotEmptyError):
            pass
