"""Where a job's attempts run: the deployment-target interface, and the targets of each
kind of FlinkCluster (`common.spec.models.Deployment`): a session cluster
(`worker.targets.session`) or clusters of the job's own (`worker.targets.application`).

The decision core never sees a target; the observer reads one and the actor acts on one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from common.flink.versions import FlinkVersion
from common.objstore.storage import Storage
from common.spec.deployments import Deployment
from common.store.records import JobRecord

STORAGE = Storage()  # this worker's clients of its jobs' state storage, shared


class DeploymentTarget(Protocol):
    """Submit, look up, cancel, stop with a savepoint, list attempts: what a supervisor needs
    of the place its job runs. Failures raise the project's errors (FlinkUnreachable: try
    again later; FlinkRequestFailed or JarError: refused; JobAlreadySubmitted: adopt)."""

    @property
    def rest_url(self) -> str: ...  # where the target's Flink REST API answers
    # The REST API and web UI of a cluster that is the current attempt's own ("" for one the
    # attempt shares): what the status names for its reader.
    @property
    def attempt_url(self) -> str: ...
    # Where its jobs' checkpoints and savepoints are read, as this worker reaches them.
    @property
    def storage(self) -> Storage: ...
    # Held while the supervisor acts on the target (a cluster limits how many act at once).
    def turn(self) -> contextlib.AbstractContextManager[Any]: ...
    # The attempt's state (None: unknown to the target), and whether a shared listing that
    # wakes the supervisor on a change said so; `since`: the last submission (monotonic).
    def state(self, job_id: str, *, listable: bool, since: float) -> tuple[str | None, bool]: ...
    def watch(self, job_id: str, wake: Callable[[], None]) -> None: ...
    def unwatch(self) -> None: ...
    # Flink job id -> state of every attempt of this job the target still knows, as read
    # after `since` (the last submission, monotonic).
    def attempts(self, since: float = float("-inf")) -> dict[str, str]: ...
    def submit(self, record: JobRecord, job_id: str, restore_path: str) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    # The job's attempt ended and none starts now: free what is left of it.
    def release(self) -> None: ...
    # Into `directory`, else the cluster's default savepoint directory.
    def stop_with_savepoint(self, job_id: str, directory: str | None = None) -> str: ...
    def trigger_savepoint(self, job_id: str, directory: str | None = None) -> str: ...
    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, str]: ...
    def dispose_savepoint(self, path: str) -> str: ...
    def checkpoints(self, job_id: str) -> dict[str, Any] | None: ...
    def root_exception(self, job_id: str) -> str: ...
    def restart_count(self, job_id: str) -> int | None: ...
    def config(self) -> dict[str, str]: ...
    # The Flink version the target reports (None: none that reads as one).
    def version(self) -> FlinkVersion | None: ...


class Targets(Protocol):
    """Makes a job's deployment target from its record."""

    def for_job(self, name: str, record: JobRecord,
                poll_interval: Callable[[], float]) -> DeploymentTarget: ...


class ByDeployment:
    """Each job's target from the targets of its cluster's kind."""

    def __init__(self, kinds: Mapping[Deployment, Targets]) -> None:
        self.kinds = dict(kinds)

    def for_job(self, name: str, record: JobRecord,
                poll_interval: Callable[[], float]) -> DeploymentTarget:
        return self.kinds[record.deployment].for_job(name, record, poll_interval)
