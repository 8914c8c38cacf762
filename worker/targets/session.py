"""A session cluster as a job's deployment target: a shared Flink cluster reached over REST,
its attempts watched through one shared listing, its jar uploaded once per cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from common.errors import JarMissing
from common.flink.access import ClusterAccess
from common.flink.client import FlinkClient
from common.flink.jobids import name_prefix
from common.flink.versions import CHECKPOINT_RETENTION, FlinkVersion
from common.objstore.storage import Storage
from common.spec.programs import JarProgram, PythonProgram
from common.store.records import JobRecord
from worker.clients import ClusterStates, FlinkClients
from worker.distributions import Distribution, choose_distribution
from worker.programs import Launchable, jar_only, launchable, no_files
from worker.programs.jars import JarCache
from worker.runturns import RunRequestTurn, any_time
from worker.targets import STORAGE


def run_request(record: JobRecord, job_id: str, restore_path: str,
                run: Launchable | None = None) -> dict[str, Any]:
    """The body of POST /jars/<id>/run for one attempt of a job running `run` (by default
    its jar)."""
    spec = record.model
    job = spec.job
    run = run or launchable(job.program, tuple(job.args), jar_only, no_files)
    body: dict[str, Any] = {
        "jobId": job_id,
        "programArgsList": list(run.args),
        "allowNonRestoredState": job.allowNonRestoredState,
        # flinksched restores from retained checkpoints: keep them when a job is cancelled.
        "flinkConfiguration": {CHECKPOINT_RETENTION.name: "RETAIN_ON_CANCELLATION",
                               **spec.flinkConfiguration},
    }
    if run.entry_class:
        body["entryClass"] = run.entry_class
    if job.parallelism:
        body["parallelism"] = job.parallelism
    if restore_path:
        body["savepointPath"] = restore_path
    return body


class SessionTargets:
    """Each job's view of its session cluster, from the worker's shared clients and jars."""

    def __init__(self, clients: FlinkClients, jars: JarCache,
                 distributions: Sequence[Distribution] = (),
                 run_turn: RunRequestTurn = any_time) -> None:
        self.clients = clients
        self.jars = jars
        self.distributions = list(distributions)  # where Python and SQL drivers come from
        self.run_turn = run_turn  # a Python run request holds the cluster alone

    def for_job(self, name: str, record: JobRecord,
                poll_interval: Callable[[], float]) -> SessionCluster:
        client = self.clients.get(ClusterAccess.of(record.cluster["spec"]))
        return SessionCluster(name, client, self.clients, self.jars, poll_interval,
                              self.distributions, self.run_turn)


class SessionCluster:
    """One job's view of a shared session cluster: its attempts are watched through the
    worker's shared listing of the cluster (`ClusterStates`), its jar uploaded once per
    cluster (`JarCache`), and at most a few supervisors act on the cluster at once."""

    def __init__(self, name: str, client: FlinkClient, clients: FlinkClients, jars: JarCache,
                 poll_interval: Callable[[], float],
                 distributions: Sequence[Distribution] = (),
                 run_turn: RunRequestTurn = any_time) -> None:
        self.name = name
        self.run_turn = run_turn
        self.distributions = list(distributions)
        self.client = client
        self.clients = clients
        self.jars = jars
        self.prefix = name_prefix(name)
        self.poll_interval = poll_interval
        self._states: ClusterStates | None = None

    @property
    def rest_url(self) -> str:
        return self.client.rest_url

    @property
    def attempt_url(self) -> str:
        return ""  # the cluster is the session's, not the attempt's

    @property
    def storage(self) -> Storage:
        return STORAGE

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self.clients.turn(self.client):
            yield

    def _listing(self) -> ClusterStates:
        states = self.clients.states(self.client)
        if self._states is not states:
            if self._states is not None:
                self._states.unwatch(self.name)
            self._states = states
        return states

    def watch(self, job_id: str, wake: Callable[[], None]) -> None:
        """Wake the supervisor when a listing shows the attempt's state change (or it appear)."""
        self._listing().watch(self.name, job_id, self.poll_interval(), wake)

    def unwatch(self) -> None:
        if self._states is not None:
            self._states.unwatch(self.name)

    def state(self, job_id: str, *, listable: bool, since: float) -> tuple[str | None, bool]:
        """The attempt's state, and whether it came from the shared listing (which then wakes
        the supervisor on a change). A listing asked for before `since` (the last submission)
        is no evidence; an attempt the listing cannot vouch for is asked for on its own."""
        state = self._listing().listed(self.name, job_id, 2 * self.poll_interval(),
                                       since=since) if listable else None
        if state is not None:
            return state, True
        return self.client.job_state(job_id), False

    def attempts(self, since: float = float("-inf")) -> dict[str, str]:
        return self._listing().listed_attempts(self.prefix, since=since)

    def submit(self, record: JobRecord, job_id: str, restore_path: str) -> None:
        job = record.model.job
        self.jars.check_program(job.program)
        run = launchable(job.program, tuple(job.args), self._drivers,
                         lambda uri: self.jars.text(uri, "sqlFile"))
        body = run_request(record, job_id, restore_path, run)
        # The worker's own jar, not the allow-list's to judge.
        driver = not isinstance(job.program, JarProgram)
        # A Python program finds its environment through the JobManager's one static
        # factory, which any run request beside it sets or clears: it runs alone.
        with self.run_turn(self.client.rest_url, isinstance(job.program, PythonProgram)):
            try:
                self.client.run_jar(self.jars.jar_id(self.client, run.jar_uri, run.jar_sha256,
                                                     driver), body)
            except JarMissing:  # the cluster forgot the upload (a JobManager restart)
                self.jars.forget(self.client)
                self.client.run_jar(self.jars.jar_id(self.client, run.jar_uri, run.jar_sha256,
                                                     driver), body)

    def _drivers(self) -> Distribution:
        """The worker's distribution of the cluster's Flink line."""
        version = self.version()
        line = f"{version.major}.{version.minor}" if version is not None else None
        return choose_distribution(self.distributions, line,
                                   "take the driver of a Python or SQL program from")

    def cancel(self, job_id: str) -> None:
        self.client.cancel(job_id)

    def release(self) -> None:
        """Nothing of a session cluster's is the job's alone."""

    def stop_with_savepoint(self, job_id: str, directory: str | None = None) -> str:
        return self.client.stop_with_savepoint(job_id, directory)

    def trigger_savepoint(self, job_id: str, directory: str | None = None) -> str:
        return self.client.trigger_savepoint(job_id, directory)

    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, str]:
        return self.client.savepoint_result(job_id, trigger_id)

    def dispose_savepoint(self, path: str) -> str:
        return self.client.dispose_savepoint(path)

    def checkpoints(self, job_id: str) -> dict[str, Any] | None:
        return self.client.checkpoints(job_id)

    def root_exception(self, job_id: str) -> str:
        return self.client.root_exception(job_id)

    def restart_count(self, job_id: str) -> int | None:
        return self.client.restart_count(job_id)

    def config(self) -> dict[str, str]:
        return self.clients.cluster_config(self.client)

    def version(self) -> FlinkVersion | None:
        return self.clients.flink_version(self.client)
