"""Failures pushed by Flink's JobStatusChangedListener (flink-listener/), on the real session
cluster, whose listener pushes to `PUSH_ROOT` through a proxy a test can cut."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from common.flink.client import FlinkClient
from common.flink.jobids import flink_job_id, name_prefix
from common.processes import free_port
from common.store.zookeeper import Store
from tests.stack import PRIMARY_PUSHES, PRIMARY_VERSION, PUSH_ROOT, Cluster, ControlPlane
from tests.waiting import wait_until
from tests.zkserver import store_on

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not PRIMARY_PUSHES, reason=f"Flink {PRIMARY_VERSION} has no "
                                 "job status listeners: its clusters are watched by polling")]

SLOW_POLL = 60.0  # the jobs' pollInterval: a restart sooner than this was noticed by a push
NOTICED_WITHIN = 2.0  # FAILED → the worker's claim of the next attempt, with the listener


def _clear(hosts: str) -> None:
    """Everything under the push root but the listener's own heartbeat."""
    client = KazooClient(hosts=hosts)
    client.start(timeout=10)
    try:
        for child in client.get_children(PUSH_ROOT) if client.exists(PUSH_ROOT) else []:
            if child != "listeners":
                client.delete(f"{PUSH_ROOT}/{child}", recursive=True)
    finally:
        client.stop()
        client.close()


@pytest.fixture
def pushed(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[ControlPlane, Store]]:
    """A control plane under the root the session cluster's listener pushes to."""
    _clear(cluster.zk_hosts)
    plane = ControlPlane(cluster, tmp_path, root=PUSH_ROOT)
    try:
        with store_on(cluster.zk_hosts, PUSH_ROOT) as store:
            store.ensure_layout()  # as a master makes it: the listener's heartbeat needs it
            yield plane, store
    finally:
        plane.stop_all()
        plane.cancel_jobs()
        if cluster.push_proxy is not None:
            cluster.push_proxy.heal()
        _clear(cluster.zk_hosts)


def _timestamp(cluster: Cluster, job_id: str, state: str) -> float:
    found = wait_until(lambda: (cluster.get(f"/jobs/{job_id}") or {}).get("timestamps", {})
                       .get(state), 30, f"{job_id} to record {state}")
    return float(found) / 1000


def _restart_event(store: Store, name: str, attempt: int) -> dict[str, Any]:
    return wait_until(lambda: next((e for e in store.events(name) if e["message"].startswith(
        f"restarted attempt {attempt} ")), None), 30, f"the restart event of attempt {attempt}")


def _push_up(metrics_port: int) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('flinksched_cluster_push_up{cluster="default"}'):
            return float(line.split()[-1])
    return None


def _describe(plane: ControlPlane, name: str) -> str:
    return subprocess.run([*plane.base_argv(), "describe", name], capture_output=True,
                          text=True, timeout=60, check=True).stdout


class TestPushRoot:
    """Under the one root the session cluster's listener pushes to: one at a time, in one
    process (the run schedules a class's tests together)."""

    def test_a_pushed_failure_is_restarted_long_before_a_poll_would_see_it(
        self, pushed: tuple[ControlPlane, Store], tmp_path: Path
    ) -> None:
        plane, store = pushed
        name, marker, metrics_port = "pushed-failure", tmp_path / "fail-once", free_port()
        plane.write_job(name, args=["--fail-marker", str(marker)], pollInterval=f"{SLOW_POLL:g}s",
                        restartPolicy={"backoff": {"initial": "0s", "max": "0s"}})
        plane.start_master("master-a", "--metrics-port", str(metrics_port))
        plane.start_worker()
        for attempt in (1, 2):  # twice: a poll landing just after a failure cannot pass for push
            current = flink_job_id(name, attempt)
            wait_until(lambda: plane.cluster.completed_checkpoint_id(current) >= 1,  # noqa: B023
                       120, f"a checkpoint of attempt {attempt}")
            marker.touch()
            failed = _timestamp(plane.cluster, current, "FAILED")
            event = _restart_event(store, name, attempt + 1)
            assert event["noticedBy"] == "push", event
            assert float(event["claimedAt"]) - failed < NOTICED_WITHIN, event
            following = flink_job_id(name, attempt + 1)
            wait_until(lambda: plane.cluster.job_state(following) == "RUNNING",  # noqa: B023
                       60, f"attempt {attempt + 1} RUNNING")
        assert plane.cluster.running_ids(name) == [flink_job_id(name, 3)]
        assert "watched by push + poll" in _describe(plane, name)
        assert wait_until(lambda: _push_up(metrics_port) == 1.0, 30, "push_up 1 for the cluster")

    def test_a_silent_listener_leaves_recovery_to_polling(
        self, pushed: tuple[ControlPlane, Store], tmp_path: Path
    ) -> None:
        plane, store = pushed
        proxy = plane.cluster.push_proxy
        assert proxy is not None
        name, marker, metrics_port = "silenced", tmp_path / "fail-once", free_port()
        first = plane.write_job(name, args=["--fail-marker", str(marker)], pollInterval="1s",
                                restartPolicy={"backoff": {"initial": "0s", "max": "0s"}})
        plane.start_master("master-a", "--metrics-port", str(metrics_port))
        plane.start_worker()
        wait_until(lambda: plane.cluster.completed_checkpoint_id(first) >= 1, 120, "a checkpoint")
        wait_until(lambda: _push_up(metrics_port) == 1.0, 30, "the listener pushing")

        proxy.partition()  # the listener's ZooKeeper is gone; flinksched's is not
        wait_until(lambda: _push_up(metrics_port) == 0.0, 30, "push_up 0 once heartbeats stop")
        assert "watched by poll only" in _describe(plane, name)
        marker.touch()
        event = _restart_event(store, name, 2)
        assert event["noticedBy"] == "poll", event
        wait_until(lambda: plane.cluster.job_state(flink_job_id(name, 2)) == "RUNNING", 60,
                   "attempt 2 RUNNING, recovered by polling")

        proxy.heal()
        wait_until(lambda: _push_up(metrics_port) == 1.0, 60, "the listener pushing again")

    def test_a_burst_of_status_changes_with_the_channel_stuck_never_holds_back_flink(
        self, pushed: tuple[ControlPlane, Store], tmp_path: Path
    ) -> None:
        """The listener runs in the JobManager's main thread: with its ZooKeeper black-holed, a
        job that Flink restarts 60 times in a row (about 180 status changes, its queue holds 16)
        must still go through every restart. A listener that waited for ZooKeeper would stall
        the JobManager, and this job with it."""
        plane, store = pushed
        proxy = plane.cluster.push_proxy
        assert proxy is not None
        store.register_push("burst")  # its events are flinksched's: each one would be sent
        heartbeat = f"{PUSH_ROOT}/listeners/default"

        def counts() -> dict[str, Any] | None:
            try:
                data, _ = store.zk.get(heartbeat)
            except NoNodeError:
                return None
            return dict(json.loads(data))

        try:  # a listener already running (an earlier job started it) has counted before
            before = int(wait_until(counts, 10, "the listener's heartbeat")["dropped"])
        except AssertionError:
            before = 0  # no job ran on the cluster yet: the listener starts with this one
        marker = tmp_path / "fail-always"
        marker.touch()
        client = FlinkClient(plane.cluster.rest_url)
        job_id = f"{name_prefix('burst')}{999:016x}"
        plane.jobs.add("burst")
        restarts = 60
        try:
            jar_id = client.upload_jar(plane.cluster.example_jar, "burst.jar")
            proxy.partition()
            started = time.monotonic()
            client.run_jar(jar_id, {
                "jobId": job_id, "programArgsList": ["--fail-always-marker", str(marker)],
                "flinkConfiguration": {"restart-strategy.type": "fixed-delay",
                                       "restart-strategy.fixed-delay.attempts": str(restarts),
                                       "restart-strategy.fixed-delay.delay": "0 ms"}})
            # A fixed-delay strategy fails the job only once every restart is spent.
            wait_until(lambda: plane.cluster.job_state(job_id) == "FAILED", 120,
                       f"the job to fail after {restarts} restarts")
            print(f"{restarts} restarts with the listener's channel stuck: "
                  f"{time.monotonic() - started:.1f}s")
        finally:
            proxy.heal()
            client.close()
        after = wait_until(lambda: (c := counts()) and c["dropped"] > before and c, 60,
                           "the listener to report the events it dropped")
        print(f"the listener dropped {after['dropped'] - before} events, sent {after['sent']}")
