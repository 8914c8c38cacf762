from __future__ import annotations

import json
import logging

import httpx

from common.store.clusterseen import ClusterSeen
from common.store.pushed import push_health
from common.store.records import Phase
from common.telemetry import leaderview
from common.telemetry.endpoints import Endpoints
from common.telemetry.jobseries import JobSample
from common.telemetry.logsetup import JsonFormatter


def test_health_endpoints_answer_the_checks_and_say_why() -> None:
    endpoints = Endpoints("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{endpoints.port}"
        # Before the process says what readiness means, it is not ready (a worker's port
        # opens before it is registered).
        answer = httpx.get(url + "/readyz")
        assert (answer.status_code, answer.text) == (503, "starting\n")
        assert httpx.get(url + "/healthz").status_code == 200
        endpoints.ready = lambda: (False, "not connected to ZooKeeper")
        answer = httpx.get(url + "/readyz")
        assert (answer.status_code, answer.text) == (503, "not connected to ZooKeeper\n")
        endpoints.ready = lambda: (True, "standby (leader is master-b)")
        assert httpx.get(url + "/readyz").status_code == 200

        def broken() -> tuple[bool, str]:
            raise RuntimeError("boom")

        endpoints.live = broken
        answer = httpx.get(url + "/healthz")
        assert answer.status_code == 503 and "boom" in answer.text
        assert httpx.get(url + "/metrics").text.count("flinksched_leader") >= 1
        assert httpx.get(url + "/other").status_code == 404
    finally:
        endpoints.close()


def test_only_the_leader_exports_jobs_and_a_deleted_job_leaves_no_series() -> None:
    job = JobSample(name="orders", cluster="prod", phase=Phase.CRASH_LOOP,
                    desired_running=True, restarts=3, flink_restarts=0,
                    last_checkpoint=None, stale_after=600.0, generation=2,
                    observed_generation=2, config_error=False)
    leaderview.LEADER_VIEW.update(workers=2)
    leaderview.LEADER_VIEW.publish([job], (), lambda: True)
    text = leaderview.exposition().decode()
    assert 'flinksched_job_phase{cluster="prod",job_name="orders",phase="CrashLoopBackOff"} 1.0' \
        in text
    assert "flinksched_job_restarts_total" in text and "flinksched_workers 2.0" in text
    assert "flinksched_job_last_checkpoint_timestamp_seconds{" not in text  # none yet
    assert "flinksched_job_series_age_seconds " in text
    leaderview.LEADER_VIEW.publish([], (), lambda: True)
    assert "job_name=" not in leaderview.exposition().decode()
    leaderview.LEADER_VIEW.publish([job], (), lambda: False)  # leadership ended while it read
    assert "job_name=" not in leaderview.exposition().decode()
    leaderview.LEADER_VIEW.update(workers=2)
    leaderview.LEADER_VIEW.publish([job], (), lambda: True)
    leaderview.LEADER_VIEW.clear()  # stepped down
    text = leaderview.exposition().decode()
    assert "flinksched_workers " not in text and "job_name=" not in text
    assert "flinksched_job_series_age_seconds" not in text


def test_json_logs_carry_the_job_attempt_and_flink_job_id() -> None:
    record = logging.LogRecord("worker.supervisor", logging.INFO, __file__, 1,
                               "job %s attempt %d (%s): %s",
                               ("orders", 3, "ab" * 16, "attempt 3 RUNNING"), None)
    record.job, record.attempt, record.flinkJobId = "orders", 3, "ab" * 16
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == f"job orders attempt 3 ({'ab' * 16}): attempt 3 RUNNING"
    assert (entry["job"], entry["attempt"], entry["flinkJobId"]) == ("orders", 3, "ab" * 16)


def test_the_leader_exports_each_clusters_flink_version_once_a_worker_reported_it() -> None:
    poll = push_health(None, 0.0, 0.0)
    seen = ClusterSeen("lts", "1.20.3", "http://jm:8081", 1.0, "worker-a")
    leaderview.LEADER_VIEW.update(workers=1)
    leaderview.LEADER_VIEW.publish([], (leaderview.ClusterSample("lts", poll, seen),
                                     leaderview.ClusterSample("new", poll)), lambda: True)
    try:
        text = leaderview.exposition().decode()
        assert 'flinksched_cluster_flink_info{cluster="lts",flink_version="1.20.3"} 1.0' in text
        assert 'flinksched_cluster_flink_info{cluster="new"' not in text  # none reported yet
        assert 'flinksched_cluster_push_up{cluster="lts"} 0.0' in text
    finally:
        leaderview.LEADER_VIEW.clear()
