"""Every Prometheus metric flinksched exports, defined once (prefix `flinksched_`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# master
LEADER = Gauge("flinksched_leader", "1 while this master is the leader")
WORKERS = Gauge("flinksched_workers", "Live registered workers")
JOBS_UNASSIGNED = Gauge("flinksched_jobs_unassigned", "Jobs with no live worker assigned")
CONFIG_ERRORS = Gauge("flinksched_config_errors", "Problems found in the config directory")
CONFIG_REMOVAL_BLOCKED = Gauge(
    "flinksched_config_removal_blocked",
    "1 while the removal guard withholds removing jobs whose config disappeared",
)
CONFIG_LAST_SYNC = Gauge(
    "flinksched_config_last_sync_timestamp_seconds", "When the config directory was last synced"
)
JOB_UP = Gauge("flinksched_job_up", "1 while the job's current attempt is RUNNING", ["job"])
JOB_PHASE = Gauge("flinksched_job_phase", "1 for the job's current phase", ["job", "phase"])
JOB_RESTARTS = Gauge("flinksched_job_restarts", "Restarts flinksched made of the job", ["job"])
JOB_LAST_CHECKPOINT = Gauge(
    "flinksched_job_last_checkpoint_timestamp_seconds",
    "Completion time of the newest checkpoint recorded for the job",
    ["job"],
)
JOB_SPEC_GENERATION = Gauge("flinksched_job_spec_generation", "Desired generation", ["job"])
JOB_OBSERVED_GENERATION = Gauge(
    "flinksched_job_observed_generation", "Generation the running attempt carries", ["job"]
)

# worker
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
