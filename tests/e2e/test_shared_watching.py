"""Watching many jobs cheaply, on the real stack: a worker reads its running jobs' states
from one shared listing of the cluster (woken when a state changes), and the leader reads
only the statuses ZooKeeper says have changed."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest
from kazoo.client import KazooClient

from bench.stackutil import flink_simulator
from common.flink.client import FlinkClient
from common.flink.jobids import flink_job_id
from common.processes import free_port
from common.store.records import JobRecord, JobStatus, Phase, encode
from common.store.zookeeper import Store
from scheduler.master.caches import OwnerCache, RecordCache, StatusCache
from tests.stack import ControlPlane
from tests.tcpproxy import TcpProxy
from tests.waiting import wait_until
from worker.clients import TURNS_PER_CLUSTER, ClusterStates

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    with flink_simulator() as url:
        yield url


def cluster_at(control: ControlPlane, rest_url: str) -> None:
    """The jobs' cluster `default` is reached at `rest_url` (the simulator, or a proxy)."""
    (control.config_dir / "clusters.yaml").write_text(
        "apiVersion: flinksched/v1\nkind: FlinkCluster\nmetadata: {name: default}\n"
        f"spec: {{restUrl: \"{rest_url}\"}}\n")


class CountingClient(FlinkClient):
    """The real client, counting the listings it asks for."""

    def __init__(self, rest_url: str) -> None:
        super().__init__(rest_url)
        self.listings = 0

    def job_listing(self) -> bytes:
        self.listings += 1
        return super().job_listing()


def test_running_jobs_are_watched_through_one_listing_and_a_change_wakes_at_once(
    control: ControlPlane,
) -> None:
    client = CountingClient(control.cluster.rest_url)
    jar = client.upload_jar(control.cluster.example_jar, "flinksched-example.jar")
    ids = [flink_job_id(f"listed-{n}", 1) for n in range(2)]
    name = {job_id: f"listed-{n}" for n, job_id in enumerate(ids)}
    for job_id in ids:
        client.run_jar(jar, {"jobId": job_id, "parallelism": 1,
                             "entryClass": "dev.flinksched.examples.StatefulCounter"})
    states = ClusterStates(client)
    woken = {job_id: threading.Event() for job_id in ids}
    try:
        for job_id in ids:
            states.watch(name[job_id], job_id, 0.2, woken[job_id].set)
        wait_until(lambda: all(states.listed(name[j], j, 0.4) == "RUNNING" for j in ids), 60,
                   "both jobs RUNNING in the listing")
        listings = client.listings
        wait_until(lambda: client.listings >= listings + 5, 10, "five more listings")
        for job_id in ids:
            assert states.listed(name[job_id], job_id, 0.4) == "RUNNING"

        for event in woken.values():
            event.clear()
        client.cancel(ids[0])
        assert woken[ids[0]].wait(5), "the cancelled job's supervisor was not woken"
        assert states.listed(name[ids[0]], ids[0], 0.4) in ("CANCELLING", "CANCELED")
        assert not woken[ids[1]].is_set(), "a job whose state did not change was woken"
        # Not in the listing, or listings asked for before the caller's submission: the
        # caller asks Flink.
        assert states.listed(name[ids[0]], flink_job_id("listed-nobody", 1), 0.4) is None
        assert states.listed(name[ids[1]], ids[1], 0.4, since=time.monotonic() + 60) is None
    finally:
        states.close()
        for job_id in ids:
            client.cancel(job_id)
        client.close()


def test_the_leaders_status_copy_reads_only_what_changed(control: ControlPlane) -> None:
    zk = KazooClient(hosts=control.cluster.zk_hosts)
    zk.start(timeout=10)
    try:
        store = Store(zk, control.root)
        names = [f"cached-{n}" for n in range(3)]
        for name in names:
            zk.create(store.status_path(name), encode(JobStatus(phase=Phase.RUNNING).to_json()),
                      makepath=True)
        cache = StatusCache(store)
        assert {n: s.phase for n, s in cache.statuses(names).items()} == dict.fromkeys(
            names, "Running")
        assert cache.reads == 3
        assert len(cache.statuses(names)) == 3 and cache.reads == 3, "read again unchanged"

        zk.set(store.status_path(names[1]), encode(JobStatus(phase=Phase.RESTARTING).to_json()))
        wait_until(lambda: cache.statuses(names)[names[1]].phase == "Restarting", 10,
                   "the changed status read again")
        assert cache.reads == 4, "only the changed status was read again"

        zk.delete(store.status_path(names[2]))
        wait_until(lambda: names[2] not in cache.statuses(names), 10, "the deleted status gone")
        assert set(cache.statuses(names[:2])) == set(names[:2])
    finally:
        zk.stop()
        zk.close()


def test_the_portals_copies_read_an_absent_owner_once_and_a_changed_record_again(
        control: ControlPlane) -> None:
    """An owner node is looked for with a watch, so its absence is known until it appears;
    a record is read again only when the leader rewrites it."""
    zk = KazooClient(hosts=control.cluster.zk_hosts)
    zk.start(timeout=10)
    try:
        store = Store(zk, control.root)
        names = ["copied-a", "copied-b"]
        for name in names:
            zk.create(store.job_path(name), encode(JobRecord(
                name, {"job": {}}, {"metadata": {"name": "c"}, "spec": {}}, 1, "h",
                "configs").to_json()), makepath=True)
        owners, records = OwnerCache(store), RecordCache(store)
        assert owners.values(names) == {} and owners.reads == 2
        assert owners.values(names) == {} and owners.reads == 2, "an absence read again"
        zk.create(store.job_path(names[0]) + "/owner", encode({"worker": "worker-a"}))
        wait_until(lambda: owners.values(names) == {names[0]: "worker-a"}, 10,
                   "the owner that appeared")
        assert owners.reads == 3, "only the job whose owner appeared was read again"

        assert {n: r.generation for n, r in records.values(names).items()} == dict.fromkeys(
            names, 1)
        zk.set(store.job_path(names[1]), encode(JobRecord(
            names[1], {"job": {}}, {"metadata": {"name": "c"}, "spec": {}}, 2, "h",
            "configs").to_json()))
        wait_until(lambda: records.values(names)[names[1]].generation == 2, 10,
                   "the rewritten record")
        assert records.reads == 3
    finally:
        zk.stop()
        zk.close()


def test_a_worker_watches_steady_jobs_without_asking_for_each(control: ControlPlane,
                                                              simulator_url: str) -> None:
    """Real master and worker processes; the simulator counts the worker's requests."""
    cluster_at(control, simulator_url)
    names = [f"steady-{n}" for n in range(3)]
    for name in names:
        control.write_job(name)
    control.start_master()
    control.start_worker(slots=3)

    def counts() -> dict[str, int]:
        return dict(httpx.get(f"{simulator_url}/_sim/stats", timeout=5).json()["requests"])

    def all_running() -> bool:
        log = control.log("worker-a")  # the worker has seen each attempt RUNNING
        return all(f"({flink_job_id(name, 1)}) RUNNING" in log for name in names)

    wait_until(all_running, 60, "three RUNNING jobs")
    settled = counts()
    wait_until(lambda: counts().get("/jobs", 0) >= settled.get("/jobs", 0) + 4, 20,
               "four more listings")
    later = counts()
    assert later.get("/jobs/{job_id}/status", 0) == settled.get("/jobs/{job_id}/status", 0), (
        "a steadily RUNNING job was asked for on its own")

    job_id = flink_job_id(names[1], 1)
    failed = time.monotonic()
    httpx.post(f"{simulator_url}/_sim/jobs/{job_id}/fail", timeout=5)
    wait_until(lambda: "attempt 2" in control.log("worker-a"), 10, "the failure acted on")
    assert time.monotonic() - failed < 3.0, "the listing did not wake the supervisor"


def test_a_worker_acts_on_one_cluster_a_few_jobs_at_a_time(control: ControlPlane,
                                                            simulator_url: str) -> None:
    """Twenty jobs start at once on one worker against a slow cluster: at most
    TURNS_PER_CLUSTER supervisors (plus the shared listing) have a request in flight at a
    time, and every job still starts."""
    cluster_at(control, simulator_url)
    names = [f"turns-{n}" for n in range(20)]
    for name in names:
        control.write_job(name)
    behaviour = f"{simulator_url}/_sim/behaviour"
    httpx.post(behaviour, json={"latencyMs": 300, "resetPeak": True}, timeout=5)
    try:
        control.start_master()
        control.start_worker(slots=len(names))

        def all_running() -> bool:
            log = control.log("worker-a")
            return all(f"({flink_job_id(name, 1)}) RUNNING" in log for name in names)

        wait_until(all_running, 90, "twenty RUNNING jobs")
    finally:
        httpx.post(behaviour, json={"latencyMs": 0}, timeout=5)
    peak = httpx.get(f"{simulator_url}/_sim/stats", timeout=5).json()["peakInFlight"]
    assert 2 <= peak <= TURNS_PER_CLUSTER + 1, f"{peak} requests in flight at once"


def test_a_late_listing_is_waited_for_not_asked_around(control: ControlPlane,
                                                       store: Store) -> None:
    """Real Flink behind a proxy that holds every chunk back: each listing arrives older than
    two poll intervals. The supervisors wait for the listing on its way instead of each
    asking Flink for its own job (which would queue more requests in front of the listing)."""
    proxy = TcpProxy(urlparse(control.cluster.rest_url).port or 8081)
    try:
        cluster_at(control, f"http://127.0.0.1:{proxy.port}")
        names = [f"late-{n}" for n in range(2)]
        for name in names:
            control.write_job(name)
        metrics_port = free_port()
        control.start_master()
        control.start_worker(slots=len(names), metrics_port=metrics_port)
        wait_until(lambda: all(store.status(n)[0].phase == "Running" for n in names), 120,
                   "both jobs RUNNING")

        def requests(endpoint: str) -> float:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            found = re.search(r'^flinksched_flink_rest_request_seconds_count\{endpoint="'
                              + endpoint + r'"\} (\S+)$', text, re.M)
            return float(found.group(1)) if found else 0.0

        # A listing asked for while an attempt's run request was on its way lacks the job, and
        # its supervisor rightly asks for it on its own: start once listings show both jobs.
        settled = requests("jobs")
        wait_until(lambda: requests("jobs") >= settled + 3, 20, "three listings showing both")
        proxy.delay = 1.2  # a request and its answer: at least 2.4 s, over 2 poll intervals
        listings, asked = requests("jobs"), requests("job_status")
        wait_until(lambda: requests("jobs") >= listings + 4, 60, "four slow listings")
        assert requests("job_status") - asked <= 1, (
            "supervisors asked Flink for their jobs while a listing was on its way")
        assert all(store.status(n)[0].phase == "Running" for n in names)
    finally:
        proxy.delay = 0.0
        proxy.close()
