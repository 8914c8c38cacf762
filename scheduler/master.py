"""The master: leader election, config sync into ZooKeeper, assignment, per-job metrics.

Only the leader writes, and every write is a transaction that checks the leader's own election
node, so a master that lost its session cannot write even if it still believes it leads.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

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

logger = logging.getLogger(__name__)


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
    def __init__(
        self, store: Store, master_id: str, config_dir: Path, cycle_interval: float = 1.0
    ) -> None:
        self.store = store
        self.id = master_id
        self.config_dir = config_dir
        self.cycle_interval = cycle_interval
        self.fence: Fence | None = None
        self.leading = False
        self.last_message = ""
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(timezone="UTC")

    def start(self) -> None:
        self.fence = self.store.join_election(self.id)
        self._scheduler.add_job(
            self.run_cycle, "interval", seconds=self.cycle_interval, id="cycle",
            max_instances=1, coalesce=True, next_run_time=datetime.now().astimezone(),
        )
        self._scheduler.start()
        for part in ("leader", "workers"):
            ChildrenWatch(self.store.zk, f"{self.store.root}/{part}", self._wake,
                          allow_session_lost=True)

    def stop(self) -> None:
        self._scheduler.shutdown(wait=True)
        metrics.LEADER.set(0)

    def _wake(self, children: list[str]) -> None:
        """Leadership or the worker set changed: run a cycle now instead of on the next tick."""
        try:
            self._scheduler.modify_job("cycle", next_run_time=datetime.now().astimezone())
        except Exception:  # the scheduler is not started yet or already shut down
            logger.debug("could not wake the cycle", exc_info=True)

    def run_cycle(self) -> None:
        with self._lock:
            try:
                message = self.cycle()
            except FencedError as exc:
                self.leading = False
                metrics.LEADER.set(0)
                message = f"stepped down: {exc}"
            except (StoreError, KazooException) as exc:
                message = f"ZooKeeper error: {exc!r}"
            except Exception:
                logger.exception("master cycle failed")
                message = "unexpected error (see the log)"
            if message != self.last_message:
                logger.info("master %s: %s", self.id, message)
                self.last_message = message

    def cycle(self) -> str:
        """One snapshot, one decision, one sentence."""
        assert self.fence is not None
        if not self.store.fence_holds(self.fence):
            if not self.store.zk.connected:
                self.leading = False
                metrics.LEADER.set(0)
                return "not connected to ZooKeeper; not acting"
            self.fence = self.store.join_election(self.id)
        if not self.store.leads(self.fence):
            self.leading = False
            metrics.LEADER.set(0)
            return f"standby (leader is {self.store.leader_id()})"
        if not self.leading:
            logger.info("master %s: became leader", self.id)
        self.leading = True
        metrics.LEADER.set(1)
        return "; ".join(part for part in (self._sync(), self._assign()) if part) or "in sync"

    def _sync(self) -> str:
        config = load_config_paths([self.config_dir])
        metrics.CONFIG_ERRORS.set(len(config.errors))
        for error in config.errors:
            logger.debug("config: %s", error)
        current = self.store.jobs()
        changed = []
        for record in desired_records(config, current):
            existing = current.get(record.name)
            if existing is not None and existing.spec_hash == record.spec_hash:
                continue
            assert self.fence is not None
            self.store.put_job(record, self.fence, create=existing is None)
            verb = "added" if existing is None else f"generation {record.generation} of"
            changed.append(f"{verb} {record.name}")
        metrics.CONFIG_LAST_SYNC.set_to_current_time()
        summary = ", ".join(changed)
        if config.errors:
            first = config.errors[0]
            errors = f"{len(config.errors)} config error(s), first: {first}"
            summary = f"{summary}; {errors}" if summary else errors
        return summary

    def _assign(self) -> str:
        assert self.fence is not None
        jobs = self.store.job_names()
        workers = self.store.workers()
        plan = plan_assignments(jobs, workers, self.store.assignments())
        for worker_id, name in plan.unassign:
            self.store.unassign(worker_id, name, self.fence)
        for worker_id in plan.dead_workers:
            self.store.drop_worker_dir(worker_id, self.fence)
        for worker_id, name in plan.assign:
            self.store.assign(worker_id, name, self.fence)
        metrics.WORKERS.set(len(workers))
        metrics.JOBS_UNASSIGNED.set(len(plan.unassigned))
        self._export_job_metrics(jobs)
        parts = [f"assigned {name} to {worker_id}" for worker_id, name in plan.assign]
        if plan.dead_workers:
            parts.append(f"workers gone: {', '.join(plan.dead_workers)}")
        if plan.unassigned:
            parts.append(f"no free worker for {', '.join(plan.unassigned)}")
        return ", ".join(parts)

    def _export_job_metrics(self, jobs: list[str]) -> None:
        for name in jobs:
            record = self.store.job(name)
            if record is not None:
                metrics.JOB_SPEC_GENERATION.labels(name).set(record.generation)
            try:
                status, _ = self.store.status(name)
            except StoreError as exc:
                logger.warning("job %s: unreadable status: %s", name, exc)
                continue
            metrics.JOB_UP.labels(name).set(1 if status.phase == RUNNING else 0)
            for phase in PHASES:
                metrics.JOB_PHASE.labels(name, phase).set(1 if status.phase == phase else 0)
            metrics.JOB_RESTARTS.labels(name).set(status.restarts)
            metrics.JOB_OBSERVED_GENERATION.labels(name).set(status.observed_generation)
            if status.last_checkpoint:
                completed = status.last_checkpoint.timestamp / 1000
                metrics.JOB_LAST_CHECKPOINT.labels(name).set(completed)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "leading": self.leading, "lastCycle": self.last_message}
