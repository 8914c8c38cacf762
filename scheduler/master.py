"""The master: leader election, config sync into ZooKeeper, assignment, per-job metrics.

Only the leader writes, and every write is a transaction that checks the leader's own election
node, so a master that lost its session cannot write even if it still believes it leads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from kazoo.exceptions import KazooException

from common import metrics
from common.configdir import ConfigLoader
from common.errors import ConfigError, FencedError, StoreError
from common.httpserve import loop_liveness
from common.records import FINISHED, REMOVED, Fence, JobRecord, JobStatus
from common.store import Store
from scheduler.assign import plan_assignments
from scheduler.gitsource import GitError, GitMirror, head_commit
from scheduler.plan import (
    ADDED,
    CHANGED,
    KEPT,
    REMOVING,
    Change,
    Plan,
    RecordMemo,
    RemovalGuard,
    build_plan,
    job_errors,
)
from scheduler.plan import REMOVED as PLAN_REMOVED
from scheduler.runtimes import StaticRuntime, WorkerRuntime, pool_size
from scheduler.statuscache import StatusCache

logger = logging.getLogger(__name__)

METRICS_INTERVAL = 5.0  # per-job gauges; Prometheus scrapes every 15-30 s
RECORDS_REREAD = 60.0
READ_ONLY_TASKS = ("metrics",)


class Master:
    """One master process. APScheduler drives its periodic work: config sync, assignment and
    pool sizing; each job acts only while this master leads."""

    def __init__(
        self,
        store: Store,
        master_id: str,
        config_dir: Path,
        cycle_interval: float = 1.0,
        runtime: WorkerRuntime | None = None,
        worker_slots: int = 1,
        spare_workers: int = 1,
        removal: RemovalGuard | None = None,
        removal_grace: float = 600.0,
        git: GitMirror | None = None,
        git_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.id = master_id
        self.config_dir = config_dir
        self.cycle_interval = cycle_interval
        self.runtime: WorkerRuntime = runtime or StaticRuntime()
        self.worker_slots = worker_slots
        self.spare_workers = spare_workers
        self.removal = removal or RemovalGuard()
        self.removal_grace = removal_grace
        self.git = git
        self.git_interval = git_interval
        self.loader = ConfigLoader()
        self.memo = RecordMemo()
        self.status_cache = StatusCache(store)
        self._records: dict[str, JobRecord] | None = None  # the leader's own writes, cached
        self._records_read = 0.0
        self.commit = ""
        self._checkout: Path | None = None  # the resolved config dir the commit was read in
        self._config_state: dict[str, object] | None = None  # last written to ZooKeeper
        self._job_errors: dict[str, str] = {}
        self._last_blocked = ""
        self.last_run = 0.0  # monotonic time a periodic job last started
        self.fence: Fence | None = None
        self.leading = False
        self.last_messages: dict[str, str] = {}
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(timezone="UTC")

    # -- scheduling ----------------------------------------------------------------------
    def start(self) -> None:
        self.fence = self.store.join_election(self.id)
        now = datetime.now().astimezone()
        for name, func, interval in (("sync", self.sync, self.cycle_interval),
                                     ("assign", self.assign, self.cycle_interval),
                                     ("pool", self.size_pool, 2 * self.cycle_interval),
                                     ("metrics", self.export_metrics, METRICS_INTERVAL)):
            self._scheduler.add_job(self._run, "interval", args=[name, func], seconds=interval,
                                    id=name, max_instances=1, coalesce=True, next_run_time=now)
        if self.git is not None:
            self._scheduler.add_job(self._pull, "interval", seconds=self.git_interval, id="git",
                                    max_instances=1, coalesce=True, next_run_time=now)
        self._scheduler.start()
        self.store.watch_members(lambda: self.wake("assign", "pool"))

    def stop(self) -> None:
        self._scheduler.shutdown(wait=True)
        self.runtime.close()
        metrics.LEADER.set(0)

    def wake(self, *jobs: str) -> None:
        """Run these periodic jobs now instead of on their next tick."""
        for job in jobs or ("sync", "assign", "pool"):
            try:
                self._scheduler.modify_job(job, next_run_time=datetime.now().astimezone())
            except Exception:  # not started yet, or already shut down
                logger.debug("could not wake %s", job, exc_info=True)

    def liveness(self) -> tuple[bool, str]:
        """/healthz: the periodic jobs run (a hung ZooKeeper call or a dead scheduler fails)."""
        return loop_liveness(self.last_run, "periodic jobs")

    def readiness(self) -> tuple[bool, str]:
        """/readyz: connected to ZooKeeper, and a leader (this master or another) is known."""
        if not self.store.connected:
            return False, "not connected to ZooKeeper"
        leader = self.store.leader_id()
        if leader is None:
            return False, "no leader elected yet"
        return True, "leader" if self.leading else f"standby (leader is {leader})"

    def _run(self, name: str, func: Callable[[], str]) -> None:
        self.last_run = time.monotonic()
        if name in READ_ONLY_TASKS:  # reads only: never holds up the sync or the assignment
            with metrics.MASTER_TASK_SECONDS.labels(name).time():
                self._attempt(name, func)
            return
        with self._lock, metrics.MASTER_TASK_SECONDS.labels(name).time():
            self._attempt(name, lambda: func() if self.check_leadership()
                          else self.standby_message)

    def _attempt(self, name: str, step: Callable[[], str]) -> None:
        try:
            message = step()
        except FencedError as exc:
            self._set_leading(False)
            message = f"stepped down: {exc}"
        except (StoreError, KazooException) as exc:
            message = f"ZooKeeper error: {exc!r}"
        except Exception:
            logger.exception("master %s: %s failed", self.id, name)
            message = "unexpected error (see the log)"
        if message and message != self.last_messages.get(name):
            logger.info("master %s: %s", self.id, message)
        self.last_messages[name] = message

    # -- leadership ----------------------------------------------------------------------
    standby_message = ""

    def check_leadership(self) -> bool:
        """Lead only while our election node exists in this session and is the lowest.

        kazoo does not reset its own election state after a connection loss, so this
        reads ZooKeeper every time instead of trusting a flag.
        """
        assert self.fence is not None
        if not self.store.fence_holds(self.fence):
            if self.leading:
                logger.warning("master %s: lost its election node; stepping down", self.id)
            self._set_leading(False)
            if not self.store.connected:
                self.standby_message = "not connected to ZooKeeper; not acting"
                return False
            self.fence = self.store.join_election(self.id)
        if not self.store.leads(self.fence):
            self._set_leading(False)
            self.standby_message = f"standby (leader is {self.store.leader_id()})"
            return False
        if not self.leading:
            logger.info("master %s: became leader", self.id)
            self._config_state = None
            self._records = None
            self.wake()
        self._set_leading(True)
        return True

    def _set_leading(self, leading: bool) -> None:
        if not leading:
            metrics.LEADER_VIEW.clear()  # only the leader exports jobs and the pool
        self.leading = leading
        metrics.LEADER.set(1 if leading else 0)

    # -- the periodic jobs ---------------------------------------------------------------
    def _pull(self) -> None:
        """Built-in git mode: bring the checkout to the branch's tip (every master does, so
        a standby is ready to lead); a failure keeps the last good checkout."""
        assert self.git is not None
        try:
            if not self.git.fetch():  # the network, outside the lock
                return
            with self._lock:  # the checkout never under a running sync: files and commit agree
                self.git.checkout()
        except GitError as exc:
            logger.error("master %s: config repository not refreshed, keeping commit %s: %s",
                         self.id, self.git.commit[:12] or "(none)", exc)
            return
        self.wake("sync")

    def sync(self) -> str:
        """Config directory → desired state in ZooKeeper, through the same plan
        `flinksched plan` prints."""
        assert self.fence is not None
        if self.git is not None and not self.git.commit:
            return "waiting for the first checkout of the config repository"
        checkout = self.config_dir.resolve()  # a git-sync sidecar swaps a link to a worktree
        config = self.loader.load([self.config_dir])
        if self.git is not None:
            self.commit = self.git.commit
        elif self.loader.parsed or checkout != self._checkout:
            # Only when files changed: `git rev-parse` is a process, the sync runs every second.
            self.commit, self._checkout = head_commit(checkout), checkout
        current = self._current_records()
        allowance = self.store.removal_allowed()
        guard = RemovalGuard(self.removal.max_share, allowed=allowance is not None)
        plan = build_plan(config, current, commit=self.commit, guard=guard, memo=self.memo)
        writes = [(c.record, c.kind == ADDED, self._event_text(c))
                  for c in plan.changes if c.record is not None]
        self._records = None  # until the writes are known to have landed
        self.store.put_jobs(writes, self.fence)
        self._records = {**current, **{record.name: record for record, _, _ in writes}}
        if allowance is not None and plan.of_kind(PLAN_REMOVED):
            self.store.consume_removal_allowance(self.fence)
            logger.warning("master %s: removal allowed by %s", self.id, allowance.get("by"))
        deleted = self._delete_removed(plan, current)
        errors = job_errors(config, current)
        self._publish_config_state(config.errors, errors, plan)
        self._job_errors = errors
        metrics.LEADER_VIEW.update(config_errors=len(config.errors),
                                   removal_blocked=bool(plan.removal_blocked),
                                   last_sync=time.time())
        changed = [c for c in plan.changes if c.kind in (ADDED, CHANGED, PLAN_REMOVED, "restored")]
        for change in changed[:20]:
            logger.info("master %s: job %s %s", self.id, change.name, self._event_text(change))
        if changed:
            self.wake("assign", "pool")
        parts = [f"{n} {kind}" for kind, n in sorted(plan.counts().items())
                 if kind not in ("unchanged", REMOVING)]
        parts += [f"deleted {name}" for name in deleted]
        if plan.removal_blocked:
            parts.append(f"REMOVAL WITHHELD: {plan.removal_blocked}")
            if plan.removal_blocked != self._last_blocked:
                logger.warning("master %s: NOT removing %s: %s", self.id,
                               ", ".join(c.name for c in plan.of_kind(KEPT)[:20]),
                               plan.removal_blocked)
        self._last_blocked = plan.removal_blocked
        if config.errors:
            parts.append(f"{len(config.errors)} config error(s), first: {config.errors[0]}")
        return "; ".join(parts)

    def _current_records(self) -> dict[str, JobRecord]:
        """Job records as ZooKeeper holds them. Only the leader writes them, so it keeps its
        own writes instead of reading 2,000 nodes a second; read again every minute anyway,
        after any failed write, and on becoming leader."""
        if self._records is None or time.monotonic() - self._records_read > RECORDS_REREAD:
            self._records = self.store.jobs()
            self._records_read = time.monotonic()
        return dict(self._records)

    def _event_text(self, change: Change) -> str:
        record = change.record
        if record is None:
            return change.action
        origin = change.source + (f" (commit {record.commit[:12]})" if record.commit else "")
        if change.kind == ADDED:
            return f"generation 1 from {origin}: {change.action}"
        if change.kind == CHANGED:
            fields = "; ".join(str(f) for f in change.fields[:10])
            return f"generation {record.generation} from {origin}: {fields}; {change.action}"
        if change.kind == PLAN_REMOVED:
            return f"no longer in the config (was {record.source}): {change.action}"
        if change.kind == "restored":
            return f"back in the config at {origin}: {change.action}"
        return ""  # moved to another file or line: no event

    def _delete_removed(self, plan: Plan, current: dict[str, JobRecord]) -> list[str]:
        """Delete the metadata of removed jobs once stopped and past the grace period."""
        due = [current[c.name] for c in plan.of_kind(REMOVING)
               if time.time() - current[c.name].removed_at >= self.removal_grace]
        if not due:
            return []
        assert self.fence is not None
        statuses = self.store.statuses([r.name for r in due])
        deleted = []
        for record in due:
            status = statuses.get(record.name)
            stopped = status is None or status.attempt == 0 or status.phase in (REMOVED,
                                                                               FINISHED)
            if not stopped:
                logger.warning("master %s: job %s was removed from the config %.0fs ago but "
                               "is not stopped yet (%s); its metadata stays", self.id,
                               record.name, time.time() - record.removed_at,
                               status.phase if status else "no status")
                continue
            final = status.last_checkpoint.path if status and status.last_checkpoint else "none"
            self.store.delete_job(record.name, self.fence)
            if self._records is not None:  # replaced, never changed: readers hold snapshots
                self._records = {k: v for k, v in self._records.items() if k != record.name}
            logger.info("master %s: deleted job %s (removed from the config); final "
                        "savepoint or checkpoint: %s", self.id, record.name, final)
            deleted.append(record.name)
        return deleted

    def _publish_config_state(self, errors: list[ConfigError], by_job: dict[str, str],
                              plan: Plan) -> None:
        """The sync's findings for `status` and `describe`; written only when they change."""
        assert self.fence is not None
        state: dict[str, object] = {
            "errors": [e.to_json() for e in errors[:500]],
            "errorCount": len(errors),
            "jobErrors": by_job,
            "commit": self.commit,
            "removalBlocked": plan.removal_blocked,
            "configDir": str(self.config_dir),
        }
        if state != self._config_state:
            self.store.put_config_state(state, self.fence)
            self._config_state = state

    def assign(self) -> str:
        """Every job on exactly one live worker; jobs of vanished workers move at once."""
        assert self.fence is not None
        jobs = self.store.job_names()
        workers = self.store.workers()
        plan = plan_assignments(jobs, workers, self.store.assignments())
        self.store.apply_assignments(plan.assign, plan.unassign, self.fence)
        for worker_id in plan.dead_workers:
            self.store.drop_worker_dir(worker_id, self.fence)
        metrics.LEADER_VIEW.update(workers=len(workers), jobs_unassigned=len(plan.unassigned))
        parts = [f"assigned {name} to {worker_id}" for worker_id, name in plan.assign[:5]]
        if len(plan.assign) > 5:
            parts.append(f"and {len(plan.assign) - 5} more")
        if plan.dead_workers:
            parts.append(f"workers gone: {', '.join(plan.dead_workers)}")
        if plan.unassigned:
            parts.append(f"no free worker for {len(plan.unassigned)} job(s)")
        return ", ".join(parts)

    def size_pool(self) -> str:
        """Keep enough workers for every job, plus warm spares."""
        jobs = len(self.store.job_names())
        workers = self.store.workers()
        busy = {w for w, names in self.store.assignments().items() if names}
        wanted = pool_size(jobs, self.worker_slots, self.spare_workers)
        metrics.LEADER_VIEW.update(workers_wanted=wanted)
        return self.runtime.reconcile(wanted, workers, busy)

    def export_metrics(self) -> str:
        """Per-job metrics from the status in ZooKeeper, so a dead worker hides no dead job.
        Runs beside the other tasks (it only reads); exports only while leading."""
        if not self.leading:
            metrics.LEADER_VIEW.clear()
            return ""
        records = self._records if self._records is not None else self.store.jobs()
        statuses = self.status_cache.statuses(sorted(records))
        overrides = self.store.overrides()
        samples = []
        for name, record in sorted(records.items()):
            status = statuses.get(name, JobStatus())
            override = overrides.get(name) or {}
            checkpoint = status.last_checkpoint
            try:
                spec = record.model
            except StoreError as exc:
                logger.warning("job %s: per-job metrics left out: %s", name, exc)
                continue
            samples.append(metrics.JobSample(
                name=name,
                cluster=str(record.cluster.get("metadata", {}).get("name", "")),
                phase=status.phase,
                desired_running=not record.removed and override.get("state") != "suspended"
                and spec.job.state == "running",
                restarts=status.restarts,
                flink_restarts=status.flink_restarts,
                last_checkpoint=checkpoint.timestamp / 1000 if checkpoint else None,
                stale_after=spec.alerts.checkpointStaleAfter,
                generation=record.generation,
                observed_generation=status.observed_generation,
                config_error=name in self._job_errors,
                checkpoints_durable=status.checkpoints_durable,
            ))
        if self.leading:  # still: leadership may have ended while this read
            metrics.LEADER_VIEW.update(jobs=tuple(samples))
        else:
            metrics.LEADER_VIEW.clear()
        return ""
