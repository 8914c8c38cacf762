"""Every plain Prometheus metric flinksched exports, defined once (prefix `flinksched_`): the
masters', the workers' and the Flink REST client's. The leader's per-job and pool series are
collected by `common.telemetry.leaderview`; docs/metrics.md lists them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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


