"""Every Prometheus metric flinksched exports, defined once (prefix `flinksched_`).

Per-job and pool metrics come only from the leading master, which reads every job's status
from ZooKeeper (a dead worker cannot hide a dead job): `LEADER_VIEW` holds what it last read
and is empty on a standby, so only one master exports them and a deleted job's series end.
Per-job series carry `job_name` and `cluster` (`job` is Prometheus' own target label).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from common.pushed import PushHealth, Watching
from common.records import Phase

# every master
LEADER = Gauge("flinksched_leader", "1 while this master is the leader")
MASTER_TASK_SECONDS = Histogram(
    "flinksched_master_task_seconds",
    "Duration of one run of a master's periodic task (sync, assign, pool, metrics)",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# every worker
WORKER_JOBS = Gauge("flinksched_worker_jobs", "Jobs this worker owns")
RECOVERY_SECONDS = Histogram(
    "flinksched_recovery_seconds",
    "Failure seen to new attempt RUNNING",
    buckets=(0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300),
)
FLINK_REST_SECONDS = Histogram(
    "flinksched_flink_rest_request_seconds",
    "Flink REST request latency",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FLINK_REST_ERRORS = Counter(
    "flinksched_flink_rest_errors_total", "Flink REST requests that failed", ["endpoint", "kind"]
)


@dataclass(frozen=True)
class JobSample:
    """One job as the leader last read it from ZooKeeper."""

    name: str
    cluster: str
    phase: Phase
    desired_running: bool
    restarts: int
    flink_restarts: int
    last_checkpoint: float | None  # seconds since the epoch
    stale_after: float
    generation: int
    observed_generation: int
    config_error: bool
    checkpoints_durable: bool = True


@dataclass(frozen=True)
class ClusterSample:
    """How the leader last found one cluster watched (its status listener's heartbeat)."""

    name: str
    push: PushHealth


@dataclass(frozen=True)
class PoolSample:
    workers: int = 0
    workers_wanted: int = 0
    jobs_unassigned: int = 0
    config_errors: int = 0
    removal_blocked: bool = False
    last_sync: float = 0.0
    jobs: tuple[JobSample, ...] = field(default_factory=tuple)
    clusters: tuple[ClusterSample, ...] = field(default_factory=tuple)


class LeaderView:
    """A collector exporting what the leader last read; nothing while this master stands by."""

    def __init__(self) -> None:
        self._sample: PoolSample | None = None
        self._lock = threading.Lock()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._sample = replace(self._sample or PoolSample(), **fields)

    def clear(self) -> None:
        with self._lock:
            self._sample = None

    def describe(self) -> list[Metric]:
        return []  # collected on every scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        sample = self._sample
        if sample is None:
            return
        for name, help_text, value in (
            ("workers", "Live registered workers", sample.workers),
            ("workers_wanted", "Workers the pool should have: jobs plus warm spares",
             sample.workers_wanted),
            ("jobs_unassigned", "Jobs with no live worker assigned", sample.jobs_unassigned),
            ("config_errors", "Problems found in the config directory", sample.config_errors),
            ("config_removal_blocked", "1 while the removal guard withholds removing jobs",
             int(sample.removal_blocked)),
            ("config_last_sync_timestamp_seconds", "When the config directory was last synced",
             sample.last_sync),
        ):
            yield GaugeMetricFamily(f"flinksched_{name}", help_text, value=value)
        yield from self._jobs(sample.jobs)
        yield from self._clusters(sample.clusters)

    @staticmethod
    def _clusters(clusters: tuple[ClusterSample, ...]) -> Iterator[Metric]:
        labels = ["cluster"]
        up = GaugeMetricFamily("flinksched_cluster_push_up", "1 while the cluster's status "
                               "listener pushes (its heartbeat is fresh); 0: polling alone "
                               "notices failures", labels=labels)
        age = GaugeMetricFamily("flinksched_cluster_push_heartbeat_age_seconds",
                                "Seconds since the status listener's last heartbeat",
                                labels=labels)
        dropped = GaugeMetricFamily("flinksched_cluster_push_dropped",
                                    "Events the listener dropped (queue full) since its "
                                    "JobManager started", labels=labels)
        for cluster in clusters:
            up.add_metric([cluster.name], 1 if cluster.push.watching is Watching.PUSH else 0)
            if cluster.push.heartbeat is not None:
                age.add_metric([cluster.name], cluster.push.age or 0.0)
                dropped.add_metric([cluster.name], cluster.push.heartbeat.dropped)
        yield from (up, age, dropped)

    def _jobs(self, jobs: tuple[JobSample, ...]) -> Iterator[Metric]:
        labels = ["job_name", "cluster"]

        def gauge(name: str, help_text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"flinksched_job_{name}", help_text, labels=labels)

        up = gauge("up", "1 while the job's current attempt is RUNNING")
        desired = gauge("desired_running", "1 when the job should run (not suspended, removed)")
        phase = GaugeMetricFamily("flinksched_job_phase", "1 for the job's current phase "
                                  "(the only phase exported for it)",
                                  labels=[*labels, "phase"])
        restarts = CounterMetricFamily("flinksched_job_restarts",
                                       "Restarts flinksched made of the job", labels=labels)
        flink_restarts = gauge("flink_restarts", "Flink's own restarts of the current attempt")
        checkpoint = gauge("last_checkpoint_timestamp_seconds",
                           "Completion time of the newest checkpoint recorded for the job")
        stale = gauge("checkpoint_stale_after_seconds",
                      "Checkpoint age past which the job alerts (spec.alerts)")
        generation = gauge("spec_generation", "Desired generation")
        observed = gauge("observed_generation", "Generation the running attempt carries")
        held = gauge("config_error", "1 while the job's config file has a problem")
        durable = gauge("checkpoints_durable", "0 while Flink keeps the job's checkpoints only "
                        "in memory (no external path): a restart can use only a savepoint")
        for job in jobs:
            values = [job.name, job.cluster]
            up.add_metric(values, 1 if job.phase == Phase.RUNNING else 0)
            desired.add_metric(values, 1 if job.desired_running else 0)
            phase.add_metric([*values, job.phase], 1)  # only the current phase: 1 series a job
            restarts.add_metric(values, job.restarts)
            flink_restarts.add_metric(values, job.flink_restarts)
            if job.last_checkpoint:
                checkpoint.add_metric(values, job.last_checkpoint)
            stale.add_metric(values, job.stale_after)
            generation.add_metric(values, job.generation)
            observed.add_metric(values, job.observed_generation)
            held.add_metric(values, 1 if job.config_error else 0)
            durable.add_metric(values, 1 if job.checkpoints_durable else 0)
        yield from (up, desired, phase, restarts, flink_restarts, checkpoint, stale, generation,
                    observed, held, durable)


LEADER_VIEW = LeaderView()
REGISTRY.register(LEADER_VIEW)
