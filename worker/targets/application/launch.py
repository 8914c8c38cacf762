"""What one attempt's own cluster is started with: pure, from the job's record, the attempt's
Flink job id and its restore point. The local and the Kubernetes launchers both start
exactly this (`worker.targets.application.local`, `worker.targets.application.kubernetes`).

An application cluster runs one job: its JobManager (Flink's application mode, as
`standalone-job.sh` and the image's `standalone-job` start it) runs the job's main method
with the deterministic job id, from the restore point, and its TaskManagers join it.
flinksched is the cluster's high availability: a JobManager that dies is replaced by a new
attempt from the newest checkpoint, so Flink's own is off, and the JobManager stays up after
its job ended (FAILED, stopped with a savepoint) until flinksched read what it needs and
tore the cluster down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.flink.versions import CHECKPOINT_RETENTION
from common.spec.models import FlinkClusterSpec
from common.store.pushed import own_cluster_listener
from common.store.records import JobRecord
from worker.programs import Launchable, jar_only, launchable, no_files

# Settings flinksched needs of every application cluster; a user's cannot override them.
REQUIRED = {
    # flinksched reads a FAILED attempt's root cause and checkpoints, then tears it down.
    "execution.shutdown-on-application-finish": "false",
    # A main method that throws (a restore point Flink cannot read) shows as a FAILED job
    # with its exception, not as a JobManager that exited without a word.
    "execution.submit-failed-job-on-application-error": "true",
    # flinksched replaces a lost JobManager with a new attempt from the newest checkpoint.
    "high-availability.type": "NONE",
}
# Defaults a user's settings override. How old the REST API's view of the job may be (a
# FAILED attempt's root cause is read from it before its cluster is torn down; Flink's
# default is 3 s). How long a TaskManager that found no ResourceManager waits before it tries
# again: the JobManager and TaskManagers start together, and a TaskManager up first waited
# Flink's default 10 s, its job RUNNING all the while with no task deployed.
FAST_START = {"web.refresh-interval": "500", "cluster.registration.error-delay": "1000"}
JOBMANAGER_MEMORY = "jobmanager.memory.process.size"
TASKMANAGER_MEMORY = "taskmanager.memory.process.size"
SLOTS = "taskmanager.numberOfTaskSlots"
PARALLELISM = "parallelism.default"
PUSH_CLUSTER = "flinksched.push.cluster"


@dataclass(frozen=True)
class Launch:
    """One attempt's own cluster."""

    job_id: str  # the attempt's deterministic Flink job id
    restore_path: str  # "" for empty state
    jar: str  # the user jar, as the JobManager's filesystem sees it
    entry_class: str | None
    args: tuple[str, ...]
    allow_non_restored: bool
    settings: Mapping[str, str]  # the Flink configuration of the JobManager and TaskManagers
    taskmanagers: int
    spec: FlinkClusterSpec = field(repr=False)

    def jobmanager_args(self) -> list[str]:
        """The application entry point's arguments (after `standalone-job.sh
        start-foreground`, or the image's `standalone-job`): options, then the job's own."""
        argv = ["--job-id", self.job_id, "--jars", self.jar]
        if self.entry_class:
            argv += ["--job-classname", self.entry_class]
        if self.restore_path:
            argv += ["--fromSavepoint", self.restore_path]
            if self.allow_non_restored:
                argv.append("--allowNonRestoredState")
        return [*argv, *dynamic(self.settings), *self.args]

    def taskmanager_args(self) -> list[str]:
        return dynamic(self.settings)


def dynamic(settings: Mapping[str, str]) -> list[str]:
    """Flink settings as the start scripts take them on the command line."""
    return [f"-D{key}={value}" for key, value in sorted(settings.items())]


def settings(record: JobRecord, spec: FlinkClusterSpec,
             local: Mapping[str, str] | None = None) -> dict[str, str]:
    """The cluster's Flink configuration: the template's, then the job's own (a job setting
    wins), then what the launcher needs (`local`: ports, directories), then what flinksched
    needs. The retained-checkpoint policy is the same as on a session cluster."""
    job = record.model
    tm_count = spec.taskManager.replicas
    sized: dict[str, str] = {
        **FAST_START,
        CHECKPOINT_RETENTION.name: "RETAIN_ON_CANCELLATION",
        JOBMANAGER_MEMORY: spec.jobManager.resource.memory,
        TASKMANAGER_MEMORY: spec.taskManager.resource.memory,
    }
    if job.job.parallelism:
        sized[PARALLELISM] = str(job.job.parallelism)
        # Enough slots for the job's parallelism across its TaskManagers, unless configured.
        sized[SLOTS] = str(max(1, math.ceil(job.job.parallelism / tm_count)))
    # A status listener the base configuration loads heartbeats as this job's cluster.
    listener = {PUSH_CLUSTER: own_cluster_listener(
        str(record.cluster.get("metadata", {}).get("name", "")), record.name)}
    return {**sized, **spec.flinkConfiguration, **job.flinkConfiguration, **(local or {}),
            **listener, **REQUIRED}


def launch_of(record: JobRecord, job_id: str, restore_path: str, jar: str,
              local: Mapping[str, str] | None = None, run: Launchable | None = None) -> Launch:
    """`jar`: the jar of `run` (by default the job's jar: `worker.programs`), as the
    JobManager sees it."""
    spec = record.cluster_model
    job = record.model.job
    run = run or launchable(job.program, tuple(job.args), jar_only, no_files)
    return Launch(
        job_id=job_id, restore_path=restore_path, jar=jar, entry_class=run.entry_class,
        args=run.args, allow_non_restored=job.allowNonRestoredState,
        settings=settings(record, spec, local), taskmanagers=spec.taskManager.replicas,
        spec=spec)


def flat_config(document: Any, prefix: str = "") -> dict[str, str]:
    """A Flink configuration file (config.yaml, nested or with dotted keys; or a 1.x
    flink-conf.yaml) as flat `key: value` strings."""
    found: dict[str, str] = {}
    if not isinstance(document, dict):
        return found
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(flat_config(value, name + "."))
        elif isinstance(value, bool):
            found[name] = "true" if value else "false"
        elif value is not None:
            found[name] = str(value)
    return found
