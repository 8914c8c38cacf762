"""The master: leader election, config sync into ZooKeeper, assignment, per-job metrics.

Only the leader writes, and every write is a transaction that checks the leader's own election
node, so a master that lost its session cannot write even if it still believes it leads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from kazoo.exceptions import KazooException
from kazoo.recipe.watchers import ChildrenWatch

from common import metrics
from common.configdir import ConfigSet, load_config_paths
from common.errors import FencedError, StoreError
from common.records import PHASES, RUNNING, Fence, JobRecord
from common.spec import FlinkCluster, FlinkJob, spec_hash
from common.store import Store
from scheduler.assign import plan_assignments
from scheduler.runtimes import StaticRuntime, WorkerRuntime, pool_size

logger = logging.getLogger(__name__)

METRICS_INTERVAL = 5.0  # per-job gauges; Prometheus scrapes every 15-30 s


def desired_records(config: ConfigSet, current: dict[str, JobRecord]) -> list[JobRecord]:
    """The job records the config asks for; a changed spec hash makes the next generation."""
    records = []
    for name, item in sorted(config.jobs.items()):
        job = item.document
        assert isinstance(job, FlinkJob)
        cluster = config.clusters[job.spec.cluster].document
        assert isinstance(cluster, FlinkCluster)
        spec = job.spec.model_dump(mode="json")
        cluster_json = cluster.model_dump(mode="json")
        labels = dict(job.metadata.labels)
        digest = spec_hash({"spec": spec, "labels": labels, "cluster": cluster_json})
        existing = current.get(name)
        if existing is not None and existing.spec_hash == digest:
            records.append(existing)
            continue
        generation = existing.generation + 1 if existing else 1
        records.append(
            JobRecord(name, spec, cluster_json, generation, digest, item.source, labels)
        )
    return records


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
    ) -> None:
        self.store = store
        self.id = master_id
        self.config_dir = config_dir
        self.cycle_interval = cycle_interval
        self.runtime: WorkerRuntime = runtime or StaticRuntime()
        self.worker_slots = worker_slots
        self.spare_workers = spare_workers
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
        self._scheduler.start()
        ChildrenWatch(self.store.zk, f"{self.store.root}/leader", self._wake_all,
                      allow_session_lost=True)
        ChildrenWatch(self.store.zk, f"{self.store.root}/workers", self._wake_all,
                      allow_session_lost=True)

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

    def _wake_all(self, children: list[str]) -> None:
        self.wake("assign", "pool")

    def _run(self, name: str, func: Callable[[], str]) -> None:
        with self._lock:
            try:
                message = func() if self.check_leadership() else self.standby_message
            except FencedError as exc:
                self.leading = False
                metrics.LEADER.set(0)
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
            if not self.store.zk.connected:
                self.standby_message = "not connected to ZooKeeper; not acting"
                return False
            self.fence = self.store.join_election(self.id)
        if not self.store.leads(self.fence):
            self._set_leading(False)
            self.standby_message = f"standby (leader is {self.store.leader_id()})"
            return False
        if not self.leading:
            logger.info("master %s: became leader", self.id)
            self.wake()
        self._set_leading(True)
        return True

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        metrics.LEADER.set(1 if leading else 0)

    # -- the periodic jobs ---------------------------------------------------------------
    def sync(self) -> str:
        """Config directory → desired state in ZooKeeper."""
        config = load_config_paths([self.config_dir])
        metrics.CONFIG_ERRORS.set(len(config.errors))
        current = self.store.jobs()
        changed = []
        assert self.fence is not None
        for record in desired_records(config, current):
            existing = current.get(record.name)
            if existing is not None and existing.spec_hash == record.spec_hash:
                continue
            self.store.put_job(record, self.fence, create=existing is None)
            verb = "added" if existing is None else f"generation {record.generation} of"
            changed.append(f"{verb} {record.name}")
        metrics.CONFIG_LAST_SYNC.set_to_current_time()
        if changed:
            self.wake("assign", "pool")
        summary = ", ".join(changed)
        if config.errors:
            errors = f"{len(config.errors)} config error(s), first: {config.errors[0]}"
            summary = f"{summary}; {errors}" if summary else errors
        return summary

    def assign(self) -> str:
        """Every job on exactly one live worker; jobs of vanished workers move at once."""
        assert self.fence is not None
        jobs = self.store.job_names()
        workers = self.store.workers()
        plan = plan_assignments(jobs, workers, self.store.assignments())
        self.store.apply_assignments(plan.assign, plan.unassign, self.fence)
        for worker_id in plan.dead_workers:
            self.store.drop_worker_dir(worker_id, self.fence)
        metrics.WORKERS.set(len(workers))
        metrics.JOBS_UNASSIGNED.set(len(plan.unassigned))
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
        return self.runtime.reconcile(wanted, workers, busy)

    def export_metrics(self) -> str:
        """Per-job metrics from the status in ZooKeeper, so a dead worker hides no dead job."""
        jobs = self.store.job_names()
        records = self.store.jobs()
        for name, status in self.store.statuses(jobs).items():
            record = records.get(name)
            if record is not None:
                metrics.JOB_SPEC_GENERATION.labels(name).set(record.generation)
            metrics.JOB_UP.labels(name).set(1 if status.phase == RUNNING else 0)
            for phase in PHASES:
                metrics.JOB_PHASE.labels(name, phase).set(1 if status.phase == phase else 0)
            metrics.JOB_RESTARTS.labels(name).set(status.restarts)
            metrics.JOB_OBSERVED_GENERATION.labels(name).set(status.observed_generation)
            if status.last_checkpoint:
                completed = status.last_checkpoint.timestamp / 1000
                metrics.JOB_LAST_CHECKPOINT.labels(name).set(completed)
        return ""
