"""A job's own clusters: the deployment target of a job whose FlinkCluster is of the
application kind. Each attempt runs on a cluster started for it (`launch` says with what; a
launcher starts it as local processes or Kubernetes objects) and torn down when the attempt
is over: a submission starts the attempt's cluster, a cancel tears it down.

What a launcher reports is checked before it drives anything: a cluster whose JobManager is
not running has failed its attempt (never "unreachable, wait"), and one whose REST API has
not answered is starting only for the launcher's `startup_grace`; after that it is torn down
and its attempt failed, so a JobManager that hangs in its start never holds the job. Both
count against the restart policy: a JobManager that cannot start ends in a crash loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import (
    ClusterLaunchFailed,
    FlinkschedError,
    FlinkUnreachable,
    JobAlreadySubmitted,
)
from common.flink.client import FlinkClient
from common.flink.jobstate import JobState
from common.flink.versions import FlinkVersion
from common.objstore.storage import Storage
from common.store.records import JobRecord
from worker.clients import FlinkClients
from worker.targets import STORAGE

logger = logging.getLogger(__name__)

CAUSE_WAIT = 2.0  # the longest a FAILED attempt's teardown waits for Flink to report its cause
CAUSE_RETRY = 0.1


@dataclass(frozen=True)
class Running:
    """One cluster of a job, as its launcher found it."""

    job_id: str  # the attempt it runs
    rest_url: str  # "" when the launcher's record of it is unusable
    alive: bool  # its JobManager runs (a process, a pod)
    started: float  # seconds since the epoch


class Launcher(Protocol):
    """Starts, finds and tears down a job's own clusters."""

    # Seconds a started JobManager may take before its REST API answers.
    startup_grace: float

    # Every cluster of the job this launcher knows of, alive or not.
    def clusters(self, job: str) -> list[Running]: ...
    # Start the attempt's cluster (ClusterLaunchFailed: refused, JarError: the jar).
    def launch(self, record: JobRecord, job_id: str, restore_path: str) -> Running: ...
    # Stop every process of the attempt's cluster and forget it; nothing left is no error.
    def tear_down(self, job: str, job_id: str) -> None: ...
    # The Flink configuration the job's clusters start with (where its checkpoints go).
    def base_config(self, record: JobRecord) -> dict[str, str]: ...
    # The last thing the attempt's JobManager wrote ("" when unknown), for the status.
    def last_words(self, job: str, job_id: str) -> str: ...


class NoLauncher:
    """A worker told nothing of how to start clusters: jobs that need one of their own are
    refused with the reason (and the restart policy decides), the others run as ever."""

    startup_grace = 0.0

    def clusters(self, job: str) -> list[Running]:
        return []

    def launch(self, record: JobRecord, job_id: str, restore_path: str) -> Running:
        raise ClusterLaunchFailed("this worker starts no clusters of a job's own: give it a "
                                  "Flink distribution (FLINK_HOME) or run it with "
                                  "--application-runtime kubernetes")

    def tear_down(self, job: str, job_id: str) -> None:
        """Nothing was started."""

    def base_config(self, record: JobRecord) -> dict[str, str]:
        return dict(record.cluster_model.flinkConfiguration)

    def last_words(self, job: str, job_id: str) -> str:
        return ""


class ApplicationTargets:
    """Makes each job's view of its own clusters."""

    def __init__(self, launcher: Launcher, clients: FlinkClients) -> None:
        self.launcher = launcher
        self.clients = clients

    def for_job(self, name: str, record: JobRecord,
                poll_interval: Callable[[], float]) -> ApplicationCluster:
        return ApplicationCluster(name, record, self.launcher, self.clients)


class ApplicationCluster:
    """One job's clusters of its own, one per attempt, at most one alive."""

    def __init__(self, name: str, record: JobRecord, launcher: Launcher,
                 clients: FlinkClients) -> None:
        self.name = name
        self.record = record
        self.launcher = launcher
        self.clients = clients
        self._answered: set[str] = set()  # job ids whose REST API answered this worker
        self._causes: dict[str, str] = {}  # root causes of FAILED attempts torn down
        self._ended: dict[str, str] = {}  # attempts whose cluster ended under them: why
        self._lock = threading.Lock()
        self._settled = False  # nothing of this job's is left to tear down

    # -- finding the attempt's cluster ---------------------------------------------------
    def _find(self, job_id: str) -> Running | None:
        return next((c for c in self.launcher.clusters(self.name) if c.job_id == job_id), None)

    def _client(self, job_id: str) -> FlinkClient:
        found = self._find(job_id)
        if found is None or not found.alive or not found.rest_url:
            raise FlinkUnreachable(f"attempt {job_id} has no running cluster of its own")
        return self.clients.get(found.rest_url)

    @property
    def rest_url(self) -> str:
        """The REST API (and web UI) of the newest cluster of this job that runs."""
        alive = [c for c in self.launcher.clusters(self.name) if c.alive and c.rest_url]
        return max(alive, key=lambda c: c.started).rest_url if alive else ""

    @property
    def attempt_url(self) -> str:
        return self.rest_url  # the cluster is the attempt's own

    @property
    def storage(self) -> Storage:
        return STORAGE

    def turn(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # a cluster of its own: nobody else acts on it

    def watch(self, job_id: str, wake: Callable[[], None]) -> None:
        """Nothing to join: the supervisor polls its own cluster every poll interval."""

    def unwatch(self) -> None:
        """Nothing shared was joined."""

    def state(self, job_id: str, *, listable: bool, since: float) -> tuple[str | None, bool]:
        """The attempt's state in its own cluster; None when it has none. A cluster whose
        JobManager exited, or whose REST API never answered within the launcher's startup
        grace, is torn down and its attempt FAILED, with that as its root cause: it counts
        against the restart policy, so a JobManager that cannot start ends in a crash loop,
        not in a restart every few seconds forever."""
        with self._lock:
            if job_id in self._ended:
                return JobState.FAILED.value, False
        found = self._find(job_id)
        if found is None:
            return None, False
        if not found.alive:
            return self._lose(job_id, "its JobManager exited")
        if not found.rest_url:
            return self._lose(job_id, "its launcher's record of it is unusable")
        try:
            state = self.clients.get(found.rest_url).job_state(job_id)
        except FlinkUnreachable:
            if job_id in self._answered:
                raise  # it answered before: an outage of a running cluster, waited for
            if time.time() - found.started < self.launcher.startup_grace:
                return JobState.INITIALIZING.value, False
            return self._lose(job_id, f"its REST API did not answer within "
                                      f"{self.launcher.startup_grace:.0f}s of its start")
        with self._lock:
            self._answered.add(job_id)
        if state is None and time.time() - found.started < self.launcher.startup_grace:
            return JobState.INITIALIZING.value, False  # the JobManager runs its main method
        return state, False

    def _lose(self, job_id: str, why: str) -> tuple[str, bool]:
        words = self.launcher.last_words(self.name, job_id)
        cause = f"the cluster of {job_id} ended: {why}" + (
            f"; its JobManager's last words: {words}" if words else "")
        logger.warning("job %s: %s; tearing it down", self.name, cause)
        self._tear_down(job_id)
        with self._lock:
            self._ended[job_id] = cause
            _bound(self._ended)
        return JobState.FAILED.value, False

    def attempts(self, since: float = float("-inf")) -> dict[str, str]:
        """Every attempt of this job whose cluster runs, with its state (INITIALIZING until
        its REST API answers): an older one is an orphan, cancelled by tearing it down.
        Asked of the clusters now, so never older than `since`."""
        found: dict[str, str] = {}
        for cluster in self.launcher.clusters(self.name):
            if not cluster.alive:
                continue
            state: str | None = JobState.INITIALIZING.value
            if cluster.rest_url:
                with contextlib.suppress(FlinkUnreachable):
                    state = self.clients.get(cluster.rest_url).job_state(cluster.job_id) or state
            found[cluster.job_id] = state or JobState.INITIALIZING.value
        return found

    # -- acting --------------------------------------------------------------------------
    def submit(self, record: JobRecord, job_id: str, restore_path: str) -> None:
        """Start the attempt's cluster, after tearing down every other of this job (the
        decision core started it only once they ended: never two attempts alive)."""
        for cluster in self.launcher.clusters(self.name):
            if cluster.job_id == job_id and cluster.alive:
                raise JobAlreadySubmitted(f"the cluster of {job_id} runs already")
            self._tear_down(cluster.job_id)
        self.record = record
        self._settled = False
        started = self.launcher.launch(record, job_id, restore_path)
        logger.info("job %s: started the cluster of %s at %s", self.name, job_id,
                    started.rest_url)

    def cancel(self, job_id: str) -> None:
        """Tear the attempt's cluster down (its retained checkpoints stay where they are)."""
        self._tear_down(job_id)

    def release(self) -> None:
        """The job rests (suspended, removed, finished, held): tear down what is left of its
        clusters, each of which ran an attempt that ended."""
        if self._settled:
            return
        for cluster in self.launcher.clusters(self.name):
            self._tear_down(cluster.job_id)
        self._settled = True

    def _tear_down(self, job_id: str) -> None:
        found = self._find(job_id)
        if found is not None and found.alive and found.rest_url:
            self._keep_cause(job_id, self.clients.get(found.rest_url))
        self.launcher.tear_down(self.name, job_id)
        if found is not None and found.rest_url:
            self.clients.drop(found.rest_url)
        with self._lock:
            self._answered.discard(job_id)

    def stop_with_savepoint(self, job_id: str, directory: str | None = None) -> str:
        return self._client(job_id).stop_with_savepoint(job_id, directory)

    def trigger_savepoint(self, job_id: str, directory: str | None = None) -> str:
        return self._client(job_id).trigger_savepoint(job_id, directory)

    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, str]:
        return self._client(job_id).savepoint_result(job_id, trigger_id)

    def dispose_savepoint(self, path: str) -> str:
        url = self.rest_url
        if not url:
            raise FlinkUnreachable(f"job {self.name} has no running cluster to dispose "
                                   f"savepoint {path}")
        return self.clients.get(url).dispose_savepoint(path)

    def checkpoints(self, job_id: str) -> dict[str, Any] | None:
        return self._client(job_id).checkpoints(job_id)

    def root_exception(self, job_id: str) -> str:
        with self._lock:
            kept = self._ended.get(job_id) or self._causes.get(job_id)
        return kept if kept is not None else self._client(job_id).root_exception(job_id)

    def _keep_cause(self, job_id: str, client: FlinkClient) -> None:
        """A FAILED attempt's root cause, read before its cluster goes (the status names it
        after the next attempt started). Flink's REST API serves it from a cache refreshed
        every `web.refresh-interval`, so a failure a moment old may need a second read."""
        try:
            if client.job_state(job_id) != JobState.FAILED.value:
                return
            deadline = time.monotonic() + CAUSE_WAIT
            cause = client.root_exception(job_id)
            while not cause and time.monotonic() < deadline:
                time.sleep(CAUSE_RETRY)
                cause = client.root_exception(job_id)
        except FlinkschedError as exc:
            logger.info("job %s: root cause of %s not read before its cluster went: %s",
                        self.name, job_id, exc)
            return
        if cause:
            with self._lock:
                self._causes[job_id] = cause
                _bound(self._causes)

    def restart_count(self, job_id: str) -> int | None:
        return self._client(job_id).restart_count(job_id)

    def config(self) -> dict[str, str]:
        """What the job's clusters are configured with, known without one running (a
        JobManager that died still has its checkpoints on disk)."""
        return self.launcher.base_config(self.record)

    def version(self) -> FlinkVersion | None:
        url = self.rest_url
        return self.clients.flink_version(self.clients.get(url)) if url else None


def _bound(remembered: dict[str, str], keep: int = 8) -> None:
    """Only the newest attempts' causes are asked for."""
    while len(remembered) > keep:
        del remembered[next(iter(remembered))]
