"""The worker process: registers, takes the jobs assigned to it, and supervises each one.

The data plane does not need the master: once a job is assigned, this process keeps it
running, whether or not any master is leading.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from common import metrics
from common.errors import StoreError, Unavailable
from common.spec.deployments import Deployment
from common.store.clusterseen import REPORT_INTERVAL
from common.store.records import WorkerInfo
from common.store.zookeeper import Store
from common.telemetry.endpoints import loop_liveness
from worker.clients import FlinkClients
from worker.clusterreport import ClusterReporter
from worker.distributions import distribution
from worker.fencing import ConnectionGuard
from worker.programs.jars import JarCache
from worker.runturns import zookeeper_turns
from worker.supervisor import JobSupervisor
from worker.targets import ByDeployment
from worker.targets.application.cluster import ApplicationTargets, Launcher, NoLauncher
from worker.targets.session import SessionCluster, SessionTargets

logger = logging.getLogger(__name__)

RECONCILE_INTERVAL = 1.0
FIRST_REPORT_AFTER = 1.0  # seconds after taking jobs: their supervisors made their targets
SHUTDOWN_GRACE = 5.0


def package_version() -> str:
    try:
        return version("flinksched")
    except PackageNotFoundError:
        return "dev"


class Worker:
    def __init__(
        self,
        store: Store,
        worker_id: str,
        *,
        slots: int = 1,
        metrics_port: int = 0,
        download_dir: Path | None = None,
        act_deadline: float = 5.0,
        allowed_jars: tuple[str, ...] = (),
        make_launcher: Callable[[JarCache], Launcher] | None = None,
        flink_homes: Sequence[Path] = (),
    ) -> None:
        self.store = store
        self.id = worker_id
        self.slots = slots
        self.metrics_port = metrics_port
        self.guard = ConnectionGuard(store, act_deadline)
        self.jars = JarCache(download_dir or Path.home() / ".cache" / "flinksched" / "jars",
                             allowed_jars)
        self.clients = FlinkClients()
        launcher = make_launcher(self.jars) if make_launcher else None
        self.targets = ByDeployment({
            Deployment.SESSION: SessionTargets(self.clients, self.jars,
                                               [distribution(home) for home in flink_homes],
                                               zookeeper_turns(store, worker_id)),
            Deployment.APPLICATION: ApplicationTargets(launcher or NoLauncher(), self.clients)})
        self.supervisors: dict[str, JobSupervisor] = {}
        # Dropped on a lapsed session and told to stop, but still finishing a call: each keeps
        # its slot until its thread ends, so repeated lapses cannot pile up threads.
        self.draining: list[JobSupervisor] = []
        self.scheduler = BackgroundScheduler(timezone="UTC")  # scheduled savepoints
        self.clusters = ClusterReporter(store, worker_id)
        self._session = -1
        self._wake = threading.Event()
        self.last_loop = 0.0  # monotonic time of the last reconcile pass

    def liveness(self) -> tuple[bool, str]:
        """/healthz: the reconcile loop turns (it runs at least every few seconds)."""
        return loop_liveness(self.last_loop, "reconcile loop")

    def readiness(self) -> tuple[bool, str]:
        """/readyz: registered in the current ZooKeeper session and able to act."""
        if not self.guard.can_act():
            return False, "not connected to ZooKeeper"
        if self._session != self.store.session_id:
            return False, "not registered in the current session"
        return True, f"owning {len(self.supervisors)} of {self.slots} slot(s)"

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            slots=self.slots,
            version=package_version(),
            started=time.time(),
            metrics_port=self.metrics_port,
        )

    def run(self, stop: threading.Event,
            before_shutdown: Callable[[], None] | None = None) -> None:
        self.scheduler.start()
        self.scheduler.add_job(self.report_clusters, "interval", seconds=REPORT_INTERVAL,
                               id="cluster-report", max_instances=1, coalesce=True)
        self._register()
        self.store.watch_assignments(self.id, self._wake.set)
        logger.info("worker %s ready with %d slot(s)", self.id, self.slots)
        while not stop.is_set():
            self.last_loop = time.monotonic()
            try:
                self.reconcile()
                metrics.WORKER_JOBS.set(len(self.supervisors))
            except StoreError as exc:
                logger.warning("worker %s: reconcile failed: %r", self.id, exc)
            self._wake.wait(RECONCILE_INTERVAL)
            self._wake.clear()
        if before_shutdown is not None:
            before_shutdown()
        self.shutdown()

    def report_clusters(self) -> None:
        """Record the Flink version of each cluster this worker's jobs run on."""
        self.clusters.report(found for supervisor in list(self.supervisors.values())
                             if (found := supervisor.cluster) is not None
                             and isinstance(found[1], SessionCluster))  # a job's own: its own

    def _register(self) -> None:
        self.store.ensure_worker_dir(self.id)
        self.store.register_worker(self.info())
        self._session = self.store.session_id
        self.clusters.forget()

    def reconcile(self) -> None:
        """Match the running supervisors to the assignments: start, stop, re-register."""
        if self.guard.take_lapse() or self.store.session_id != self._session:
            self._drop_all("ZooKeeper session lapsed")
            if not self.guard.can_act():
                return
            self._register()
            logger.info("worker %s registered again in a new session", self.id)
        if not self.guard.can_act():
            return
        assigned = self.store.assigned_names(self.id)
        for name, supervisor in list(self.supervisors.items()):
            if name not in assigned or not supervisor.alive:
                supervisor.stop()
                supervisor.join(SHUTDOWN_GRACE)
                supervisor.release()
                del self.supervisors[name]
                why = "unassigned" if name not in assigned else "supervisor ended"
                logger.info("worker %s: released job %s (%s)", self.id, name, why)
        self.draining = [s for s in self.draining if s.alive]
        free = max(0, self.slots - len(self.supervisors) - len(self.draining))
        to_take = sorted(assigned - self.supervisors.keys())[:free]
        if not to_take:
            return
        # Two pipelined rounds however many jobs arrive at once (a worker taking a hundred
        # jobs would otherwise wait on two hundred round trips before the last one starts).
        epochs = self.store.assignment_epochs(self.id, to_take)
        for name, claimed in self.store.claim_ownerships(self.id, epochs).items():
            if isinstance(claimed, Unavailable):
                if claimed.held_by:
                    logger.info("worker %s: waiting for job %s: %s", self.id, name, claimed.why)
                else:
                    logger.warning("worker %s: cannot take job %s: %s", self.id, name,
                                   claimed.why)
                continue
            supervisor = JobSupervisor(self.store, name, claimed, self.guard, self.targets,
                                       self.scheduler)
            self.supervisors[name] = supervisor
            supervisor.start()
            logger.info("worker %s: owns job %s (epoch %d)", self.id, name, claimed.epoch)
        # A cluster new to this worker is reported after its jobs' first cycles, not at the
        # next pass of the interval.
        self.scheduler.add_job(self.report_clusters, "date", id="cluster-report-soon",
                               replace_existing=True,
                               run_date=datetime.now(UTC) + timedelta(seconds=FIRST_REPORT_AFTER))

    def _drop_all(self, why: str) -> None:
        for name, supervisor in self.supervisors.items():
            supervisor.stop()
            logger.warning("worker %s: dropped job %s: %s", self.id, name, why)
        self.draining.extend(self.supervisors.values())
        self.supervisors.clear()

    def shutdown(self) -> None:
        """Hand every job back at once; the Flink jobs keep running for the next owner. Without
        ZooKeeper nothing can be handed back: the jobs move when the session times out."""
        for supervisor in self.supervisors.values():
            supervisor.stop()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for supervisor in self.supervisors.values():
            supervisor.join(max(0.0, deadline - time.monotonic()))
            if self.store.connected:
                try:
                    supervisor.release()
                except StoreError as exc:
                    logger.warning("worker %s: job %s not handed back: %r", self.id,
                                   supervisor.name, exc)
        self.supervisors.clear()
        self.scheduler.shutdown(wait=False)
        handed_back = self.store.connected
        if handed_back:
            try:
                self.store.unregister_worker(self.id)
            except StoreError as exc:
                logger.warning("worker %s: not unregistered: %r", self.id, exc)
        self.clients.close()
        logger.info("worker %s stopped; %s", self.id, "its jobs were handed back" if handed_back
                    else "its jobs move once its ZooKeeper session expires")
