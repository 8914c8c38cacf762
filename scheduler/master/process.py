"""The master: leader election, config sync into ZooKeeper, assignment, per-job metrics.

Only the leader writes, and every write is a transaction that checks the leader's own election
node, so a master that lost its session cannot write even if it still believes it leads.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from common import metrics
from common.errors import FencedError, StoreError, Unavailable
from common.store.clusterseen import ClusterSeen
from common.store.records import Fence, JobStatus
from common.store.supervision import shown
from common.store.zookeeper import Store
from common.telemetry import leaderview
from common.telemetry.endpoints import loop_liveness
from common.telemetry.jobseries import JobSample
from scheduler.master.assign import assign_jobs
from scheduler.master.caches import OwnerCache, StatusCache
from scheduler.master.changes import RemovalGuard
from scheduler.master.gitsource import GitError, GitMirror
from scheduler.master.pool.runtime import StaticRuntime, WorkerRuntime, pool_size
from scheduler.master.sync import ConfigSync

logger = logging.getLogger(__name__)

METRICS_INTERVAL = 5.0  # per-job gauges; Prometheus scrapes every 15-30 s
READ_ONLY_TASKS = ("metrics",)
LOADING_FULL_GC_AFTER = 1000  # middle-generation passes per full one while loading (Python: 10)


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
        manage_heap: bool = False,
        supervision_grace: float = 10.0,
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
        self.config_sync = ConfigSync(store, master_id, config_dir, removal, removal_grace, git,
                                      changed=lambda: self.wake("assign", "pool"))
        self.status_cache = StatusCache(store)
        self.owner_cache = OwnerCache(store)
        # A job with no owner for this long (a session timeout: the time a lost owner takes
        # to vanish) is reported unsupervised, whatever its status says.
        self.supervision_grace = supervision_grace
        self._unowned_since: dict[str, float] = {}  # job -> when this leader first saw no owner
        self.last_run = 0.0  # monotonic time a periodic job last started
        self.fence: Fence | None = None
        self.leading = False
        self.manage_heap = manage_heap  # the process is this master's alone (see _settle_heap)
        self._gc_thresholds: tuple[int, int, int] | None = None  # while full passes wait
        self._heap_lock = threading.Lock()
        self._cluster_problems: dict[str, str] = {}  # cluster -> why its node was not used
        self.last_messages: dict[str, str] = {}
        self.waiting = 0  # jobs the last assignment found no free slot for
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
        except StoreError as exc:
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
            self.config_sync.forget()
            if self.manage_heap and self._gc_thresholds is None:
                self._defer_full_collections()
            self.wake()
        self._set_leading(True)
        return True

    def _set_leading(self, leading: bool) -> None:
        if not leading:
            leaderview.LEADER_VIEW.clear()  # only the leader exports jobs and the pool
            self._restore_collections()  # if it stepped down while loading
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
        """Config directory → desired state in ZooKeeper (`scheduler/configsync.py`)."""
        assert self.fence is not None
        return self.config_sync.run(self.fence)

    def assign(self) -> str:
        """Every job on exactly one live worker; jobs of vanished workers move at once."""
        assert self.fence is not None
        jobs = self.store.job_names()
        workers = self.store.workers()
        plan = assign_jobs(jobs, workers, self.store.assignments())
        self.store.apply_assignments(plan.assign, plan.unassign, self.fence)
        for worker_id in plan.dead_workers:
            self.store.drop_worker_dir(worker_id, self.fence)
        leaderview.LEADER_VIEW.update(workers=len(workers), jobs_unassigned=len(plan.unassigned))
        if len(plan.unassigned) > self.waiting:
            self.wake("pool")  # new workers for them now, not at the pool's next tick
        self.waiting = len(plan.unassigned)
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
        wanted = pool_size(jobs, self.worker_slots, self.spare_workers, len(workers),
                           self.waiting)
        leaderview.LEADER_VIEW.update(workers_wanted=wanted)
        done = self.runtime.reconcile(wanted, workers, busy)
        if self.waiting and self.runtime.name == "static":
            return (f"{self.waiting} job(s) wait for a worker slot: this master starts no "
                    f"workers (--runtime static); the pool needs {wanted - len(workers)} more")
        return done

    def export_metrics(self) -> str:
        """Per-job metrics from the status in ZooKeeper, so a dead worker hides no dead job.
        Runs beside the other tasks (it only reads); exports only while leading."""
        if not self.leading:
            leaderview.LEADER_VIEW.clear()
            return ""
        cached = self.config_sync.records
        records = cached if cached is not None else self.store.jobs()
        statuses = self.status_cache.statuses(sorted(records))
        owners = self.owner_cache.values(sorted(records))
        workers = self.store.worker_ids()
        overrides = self.store.overrides()
        now = time.monotonic()
        self._unowned_since = {name: self._unowned_since.get(name, now) for name in records
                               if name not in owners}
        samples = []
        for name, record in sorted(records.items()):
            status = statuses.get(name, JobStatus())
            unowned = self._unowned_since.get(name)
            seen = shown(status, owners.get(name), None if unowned is None else now - unowned,
                         status.worker in workers, self.supervision_grace)
            override = overrides.get(name) or {}
            checkpoint = status.last_checkpoint
            try:
                spec = record.model
            except StoreError as exc:
                logger.warning("job %s: per-job metrics left out: %s", name, exc)
                continue
            samples.append(JobSample(
                name=name,
                cluster=str(record.cluster.get("metadata", {}).get("name", "")),
                phase=seen.phase,
                supervised=seen.supervised,
                desired_running=not record.removed and override.get("state") != "suspended"
                and spec.job.state == "running",
                restarts=status.restarts,
                flink_restarts=status.flink_restarts,
                last_checkpoint=checkpoint.timestamp / 1000 if checkpoint else None,
                stale_after=spec.alerts.checkpointStaleAfter,
                generation=record.generation,
                observed_generation=status.observed_generation,
                config_error=name in self.config_sync.job_errors,
                checkpoints_durable=status.checkpoints_durable,
                deployment=record.deployment.value,
                stored_bytes=status.stored.bytes if status.stored else None,
                stored_objects=status.stored.objects if status.stored else None,
                rollbacks=status.rollbacks,
                rolled_back_from=status.rollback.from_generation if status.rollback else 0,
            ))
        leaderview.LEADER_VIEW.update(
            jobs_unsupervised=sum(1 for sample in samples if not sample.supervised))
        clusters = sorted({sample.cluster for sample in samples if sample.cluster})
        pushes = tuple(leaderview.ClusterSample(name, self.store.listener(name),
                                             self._cluster_seen(name)) for name in clusters)
        # encoded here, off the scrape; kept only if this master still leads
        leaderview.LEADER_VIEW.publish(samples, pushes, lambda: self.leading)
        if cached is not None and self._gc_thresholds is not None:
            self._settle_heap(len(records))
        return ""

    def _cluster_seen(self, name: str) -> ClusterSeen | None:
        """What a worker recorded of the cluster; a node that cannot be used is logged (when
        its problem changes) and left out of the metrics, never a failed pass."""
        seen = self.store.cluster_seen(name)
        if isinstance(seen, Unavailable):
            if self._cluster_problems.get(name) != seen.why:
                logger.warning("cluster %s: %s; its Flink version is not exported", name,
                               seen.why)
            self._cluster_problems[name] = seen.why
            return None
        self._cluster_problems.pop(name, None)
        return seen

    # -- the heap ------------------------------------------------------------------------
    # A full pass of Python's cyclic garbage collector scans every object the process holds
    # (a few hundred thousand with 5,000 jobs) and holds the interpreter lock meanwhile: on
    # a loaded machine such passes took up to 3.7 s, and a scrape of /metrics waited for
    # each. They came every few seconds while the leader loaded its jobs (the collector
    # runs one each time the heap has grown by a quarter) and found almost nothing to collect.
    def _defer_full_collections(self) -> None:
        """While a new leader loads its jobs: no full pass (young objects are still
        collected), until `_settle_heap` or until it steps down."""
        with self._heap_lock:
            self._gc_thresholds = gc.get_threshold()
            young, middle, _ = self._gc_thresholds
            gc.set_threshold(young, middle, LOADING_FULL_GC_AFTER)

    def _restore_collections(self) -> bool:
        """Python's own thresholds again; False when they were not deferred."""
        with self._heap_lock:
            if self._gc_thresholds is None:
                return False
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None
            return True

    def _settle_heap(self, jobs: int) -> None:
        """The leader holds every record (and its validated spec) and every status: keep
        them out of full passes from now on, which then scan only what came later. They are
        replaced by reference (a record when its config changes, a status when it is read
        again) and freed by reference counting as before; they hold no cycles."""
        if not self._restore_collections():  # stepped down meanwhile
            return
        gc.freeze()
        logger.info("master %s: loaded the state of %d job(s); %d objects kept out of full "
                    "garbage collections", self.id, jobs, gc.get_freeze_count())
