"""The ZooKeeper store: the only code that knows the znode layout (with its two base modules).

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
    events/<name prefix>           the newest status change Flink pushed for the job
    listeners/<cluster>            ephemeral, a cluster's status listener's heartbeat
    clusters/<cluster>             what workers saw of the cluster: its Flink version

Outside the root, shared by every root: `/flinksched-run-requests/<cluster key>`, the turns
at a session cluster's run requests (`common.store.runrequests`).

The store's code is split by responsibility: `common.store.nodes` (paths, session, fenced
transactions, watches), `common.store.membership` (election, workers, assignments, config sync),
`common.store.listenernodes` (what Flink's status listener pushes),
`common.store.runrequests` (turns at a cluster's run requests) and this module (jobs: records,
status, ownership, events, commands, overrides). Every write that needs an entitlement
(leadership, ownership) is a transaction that also checks the entitling node, so a process
that lost its session cannot write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError

from common.errors import ConflictError, StoreError, Unavailable
from common.store.boundary import kazoo_errors_stop_here
from common.store.clusterseen import ClusterSeen, parse_cluster_seen
from common.store.interfaces import JobWatcher
from common.store.listenernodes import ListenerNodes
from common.store.membership import Membership
from common.store.nodes import Op
from common.store.records import (
    MAX_EVENTS,
    Event,
    Fence,
    JobRecord,
    JobStatus,
    StableSpec,
    decode,
    encode,
)
from common.store.runrequests import RunRequestTurns

logger = logging.getLogger(__name__)

T = TypeVar("T")


@kazoo_errors_stop_here
class Store(Membership, ListenerNodes, RunRequestTurns):
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

    def jobs(self) -> dict[str, JobRecord]:
        return self.records(self.job_names())

    def records(self, names: list[str],
                changed: Callable[[str], None] | None = None) -> dict[str, JobRecord]:
        """Records of these jobs in one pipelined round; unreadable ones are logged and
        skipped. `changed(name)` is called once when a record read here changes or is deleted
        (in the store's thread: it must not block); reading it again watches it again."""
        watch = None
        if changed is not None:
            def watch(event: Any) -> None:
                changed((event.path or "").rsplit("/", 1)[-1])

        records = {}
        for name, data in zip(names, self._get_many([self.job_path(n) for n in names], watch),
                              strict=True):
            if data is None:
                continue
            try:
                records[name] = JobRecord.from_json(name, decode(data, f"job {name}"))
            except StoreError as exc:
                logger.warning("skipping job %s: %s", name, exc)
        return records

    def statuses(self, names: list[str],
                 changed: Callable[[str], None] | None = None) -> dict[str, JobStatus]:
        """Status of many jobs in one pipelined round; unreadable ones are logged and skipped.
        `changed(name)` is called once when a status read here changes or is deleted (in the
        store's thread: it must not block); reading it again watches it again."""
        found = {}
        paths = [self.status_path(name) for name in names]
        watch = None
        if changed is not None:
            def watch(event: Any) -> None:
                name = self._job_of_path(event.path or "", "status")
                if name is not None:
                    changed(name)

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
                ops.append(("delete", f"{self._assignments_path(worker_id)}/{name}", None))
        if self.zk.exists(self._path("overrides", name)):
            ops.append(("delete", self._path("overrides", name), None))
        self._commit_ops(fence, ops)
        self.drop_push(name)

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

    def stable(self, name: str) -> StableSpec | None:
        """The job's last stable generation, once one became stable."""
        try:
            data, _ = self.zk.get(self.job_path(name) + "/stable")
        except NoNodeError:
            return None
        return StableSpec.from_json_bytes(name, data)

    def write_stable(self, name: str, stable: StableSpec, owner: Fence) -> None:
        """Record the job's last stable generation while owning the job."""
        path = self.job_path(name) + "/stable"
        data = encode(stable.to_json())
        if self.zk.exists(path):
            self._commit(owner, lambda t: t.set_data(path, data))
        else:
            self._commit(owner, lambda t: t.create(path, data))

    # -- ownership (worker) --------------------------------------------------------------
    def owner(self, name: str) -> tuple[str, int] | None:
        try:
            data, _ = self.zk.get(self.job_path(name) + "/owner")
        except NoNodeError:
            return None
        value = decode(data, f"job {name} owner")
        return str(value.get("worker", "")), int(value.get("epoch", 0))

    def owners(self, names: list[str],
               changed: Callable[[str], None] | None = None) -> dict[str, str]:
        """The worker each job's owner node names, for the jobs that have one, in two
        pipelined rounds. `changed(name)` is called once when an owner node read here appears,
        changes or goes (in the store's thread: it must not block)."""
        watch = None
        if changed is not None:
            def watch(event: Any) -> None:
                name = self._job_of_path(event.path or "", "owner")
                if name is not None:
                    changed(name)

        paths = [self.job_path(name) + "/owner" for name in names]
        exists = [self.zk.exists_async(path, watch=watch) for path in paths]
        present = [(name, path) for name, path, result in zip(names, paths, exists, strict=True)
                   if result.get() is not None]
        pending = [(name, self.zk.get_async(path)) for name, path in present]
        found = {}
        for name, result in pending:
            try:
                data, _ = result.get()
            except NoNodeError:  # gone since: its watch fired
                continue
            try:
                found[name] = str(decode(data, f"job {name} owner").get("worker", "")) or "?"
            except StoreError as exc:
                logger.warning("job %s: %s; its owner counts as unknown", name, exc)
                found[name] = "?"
        return found

    def claim_ownership(self, name: str, worker_id: str, epoch: int) -> Fence:
        """Become the job's owner (ephemeral node); ConflictError while another holds it,
        StoreError when it does not exist."""
        claimed = self.claim_ownerships(worker_id, {name: epoch})[name]
        if isinstance(claimed, Unavailable):
            raise (ConflictError if claimed.held_by else StoreError)(claimed.why)
        return claimed

    def claim_ownerships(self, worker_id: str,
                         epochs: dict[str, int]) -> dict[str, Fence | Unavailable]:
        """Claim several jobs in one pipelined round: each job's Fence, or why it was not had
        (`held_by` another worker, or it does not exist)."""
        session = self.session_id
        pending = {}
        for name, epoch in epochs.items():
            payload = encode({"worker": worker_id, "epoch": epoch, "since": time.time()})
            path = self.job_path(name) + "/owner"
            pending[name] = (path, payload, self.zk.create_async(path, payload, ephemeral=True))
        claimed: dict[str, Fence | Unavailable] = {}
        for name, (path, payload, result) in pending.items():
            try:
                result.get()
                claimed[name] = Fence(path, 0, session, worker_id, epochs[name])
            except NodeExistsError:
                data, stat = self.zk.get(path)
                if stat.ephemeralOwner != session:
                    holder = str(decode(data, f"job {name} owner").get("worker", "?"))
                    claimed[name] = Unavailable(f"job {name} is owned by worker {holder}",
                                                held_by=holder)
                    continue
                self.zk.set(path, payload, version=stat.version)  # ours, from this session
                claimed[name] = Fence(path, stat.version + 1, session, worker_id, epochs[name])
            except NoNodeError:
                claimed[name] = Unavailable(f"job {name} does not exist")
        return claimed

    def release_ownership(self, fence: Fence) -> None:
        """Delete the ownership node, when this session holds it and can reach ZooKeeper
        (otherwise it goes with the session, or the next claim in this session takes it)."""
        if self.session_id != fence.session_id or not self.connected:
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

    # -- watches of one job (its supervisor) ----------------------------------------------
    def watch_job(self, name: str, watcher: JobWatcher) -> None:
        """Tell `watcher` about every change of the job's record, override, commands and the
        status Flink pushes for it until it is closed."""

        def active() -> bool:
            return not watcher.closed

        def record(data: bytes | Unavailable | None) -> None:
            watcher.record_changed(self._decoded(
                data, JobRecord.from_json_bytes, name, True, "read again by its next cycle"))

        def override(data: bytes | Unavailable | None) -> None:
            watcher.override_changed(self._decoded(
                data, lambda n, raw: decode(raw, f"override of job {n}"), name, False,
                "ignored until it changes"))

        def commands(children: list[str] | Unavailable) -> None:
            # Not read counts as waiting: the cycle looks for itself.
            watcher.commands_changed(isinstance(children, Unavailable) or bool(children))

        self.watches.data(self.job_path(name), record, active)
        self.watches.data(self.override_path(name), override, active)
        self.watches.children(self.job_path(name) + "/commands", commands, active)
        # Watched once it exists: a watch set first would fire on the creation itself.
        self.register_push(name, then=lambda: self.watch_pushed(name, watcher.pushed_changed,
                                                                active))

    # -- clusters: what workers saw of them ----------------------------------------------
    def cluster_seen(self, cluster: str) -> ClusterSeen | Unavailable | None:
        """What a worker last saw of the cluster; None: nothing yet; Unavailable: why the
        node could not be used."""
        if not cluster or "/" in cluster:
            return Unavailable(f"no cluster node for {cluster!r}")
        try:
            data, _ = self.zk.get(self._path("clusters", cluster))
        except NoNodeError:
            return None
        except KazooException as exc:
            return Unavailable(f"not read: {exc!r}")
        try:
            return parse_cluster_seen(cluster, data)
        except StoreError as exc:
            return Unavailable(str(exc))

    def put_cluster_seen(self, seen: ClusterSeen) -> None:
        """Unfenced: any worker may say what it saw, and they see the same cluster."""
        path = self._path("clusters", seen.cluster)
        try:
            self.zk.set(path, seen.to_bytes())
        except NoNodeError:
            try:
                self.zk.create(path, seen.to_bytes(), makepath=True)
            except NodeExistsError:
                self.zk.set(path, seen.to_bytes())

    @staticmethod
    def _decoded(data: bytes | Unavailable | None, parse: Callable[[str, bytes], T], name: str,
                 junk_unavailable: bool, then: str) -> T | Unavailable | None:
        """A watched node's value: Unavailable when it could not be read; junk read is
        logged, saying what happens `then`, and is Unavailable (`junk_unavailable`) or None."""
        if isinstance(data, Unavailable) or data is None:
            return data
        try:
            return parse(name, data)
        except StoreError as exc:
            logger.warning("job %s: %s; %s", name, exc, then)
            return Unavailable(str(exc)) if junk_unavailable else None
