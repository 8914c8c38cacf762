"""Sessions ZooKeeper itself expires, on the real server: whoever held one registers again in
a new session and owns its jobs again, however many watches it kept.

The expiry is the server's (`tests/zksessions.py`), not a process kill nor a client-side
simulation: the client learns of it when it reconnects, gets a new session at once, and its
watches must all be set again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from kazoo.client import KazooClient, KazooState

from common.flink.jobids import flink_job_id
from common.processes import free_port
from common.settings import ZkSettings
from common.store.connect import close, connect, keep_session
from common.store.records import JobStatus, Phase
from common.store.watches import Watches
from common.store.zookeeper import Store
from tests.stack import ControlPlane
from tests.tcpproxy import TcpProxy
from tests.waiting import holds_for, wait_until
from tests.zksessions import SessionTap, expire_session

pytestmark = pytest.mark.e2e

WATCHES = 1000


def answers(client: KazooClient, path: str, timeout: float) -> bool:
    """The client completes a request within `timeout` (asked from a thread of its own: a
    wedged client blocks even the call that sends the request)."""
    done = threading.Event()

    def ask() -> None:
        try:
            client.exists_async(path).get(timeout=timeout)
            done.set()
        except Exception:  # not answered: the wait below says so
            pass

    threading.Thread(target=ask, daemon=True).start()
    return done.wait(timeout)


def test_a_client_holding_a_thousand_watches_works_again_in_its_new_session(
    control: ControlPlane, store: Store
) -> None:
    base = f"{control.root}/watched"
    for index in range(WATCHES):
        store.zk.ensure_path(f"{base}/n{index}")
    client = KazooClient(hosts=control.cluster.zk_hosts, timeout=control.session_timeout)
    client.start(timeout=10)
    try:
        watches = Watches(client)
        reports: dict[str, int] = {}

        def counter(path: str) -> Callable[[object], None]:
            def report(data: object) -> None:
                reports[path] = reports.get(path, 0) + 1
            return report

        for index in range(WATCHES):
            watches.data(f"{base}/n{index}", counter(f"{base}/n{index}"))
        wait_until(lambda: len(reports) == WATCHES, 30, "every watch's first report")
        old_session, password = client.client_id
        expire_session(control.cluster.zk_hosts, old_session, password)
        expired = time.monotonic()

        wait_until(lambda: client.connected and client.client_id[0] != old_session, 30,
                   "a new session")
        assert answers(client, base, 10), "the client answers no request in its new session"
        # Every watch is set again in the new session: a change of any node is reported.
        before = dict(reports)
        store.zk.set(f"{base}/n{WATCHES - 1}", b"changed")
        wait_until(lambda: reports[f"{base}/n{WATCHES - 1}"] > before[f"{base}/n{WATCHES - 1}"],
                   10, "the last watch, armed again, to report a change")
        assert time.monotonic() - expired < control.session_timeout + 5
    finally:
        # From a thread of its own: a wedged client never stops, and the test must still end.
        threading.Thread(target=lambda: (client.stop(), client.close()), daemon=True).start()


SUSPENDED_JOBS = 99


@pytest.fixture
def tapped(control: ControlPlane) -> Iterator[tuple[str, SessionTap]]:
    """A proxy to ZooKeeper that learns the session of the process behind it: the hosts to
    give that process, and the tap that can have its session expired."""
    proxy = TcpProxy(int(control.cluster.zk_hosts.rsplit(":", 1)[1]))
    try:
        yield f"127.0.0.1:{proxy.port}", SessionTap(proxy)
    finally:
        proxy.close()


def test_a_worker_whose_session_the_server_expires_owns_its_hundred_jobs_again(
    control: ControlPlane, store: Store, tapped: tuple[str, SessionTap]
) -> None:
    zk, tap = tapped
    running = control.write_job("expiry-running")
    names = ["expiry-running", *(f"expiry-s{i:02d}" for i in range(SUSPENDED_JOBS))]
    for name in names[1:]:
        control.write_job(name, state="suspended")
    control.start_master()
    control.start_worker(slots=len(names), zk=zk)

    def owned_in_one_session() -> int | None:
        """The worker's session, once it is registered in it and owns every job in it."""
        registered = store.zk.exists(f"{control.root}/workers/worker-a")
        if registered is None:
            return None
        owners = [store.zk.exists_async(f"{store.job_path(n)}/owner") for n in names]
        sessions = {stat.ephemeralOwner if stat else None
                    for stat in (o.get(timeout=10) for o in owners)}
        return (registered.ephemeralOwner
                if sessions == {registered.ephemeralOwner} else None)

    first = wait_until(owned_in_one_session, 90, "the worker owning every job")
    wait_until(lambda: control.cluster.job_state(running) == "RUNNING", 90,
               "the running job RUNNING")
    wait_until(lambda: all(store.status(n)[0].phase == Phase.SUSPENDED for n in names[1:]),
               30, "the other jobs Suspended")

    assert tap.expire(control.cluster.zk_hosts) == first
    expired = time.monotonic()
    second = wait_until(lambda: (s := owned_in_one_session()) and s != first and s,
                        control.session_timeout + 10,
                        "the worker registered again, owning every job in its new session")
    came_back = time.monotonic() - expired
    assert came_back < control.session_timeout + 5, f"came back after {came_back:.1f}s"
    assert second != first
    # Adopted, not restarted: the same attempt runs, nothing else was submitted.
    def current() -> JobStatus | None:
        found = store.status("expiry-running")[0]
        return found if found.worker == "worker-a" and found.phase == Phase.RUNNING else None

    status = wait_until(current, 30, "the job's status again")
    assert status.flink_job_id == running == flink_job_id("expiry-running", 1)
    assert control.cluster.submissions("expiry-running") == [running]
    log = control.log("worker-a")
    assert "registered again in a new session" in log


BLIP_SESSION_TIMEOUT = 20.0  # the worker may act again 10 s into a lost connection


def _readiness(url: str) -> str:
    """The worker's /readyz, status and text of one answer."""
    answer = httpx.get(url, timeout=2)
    return f"{answer.status_code} {answer.text.strip()}"


def test_a_moment_without_the_connection_keeps_the_session_and_the_workers_job(
    control: ControlPlane, store: Store
) -> None:
    """A connection lost for a few seconds, well inside the session and the worker's local
    deadline, is not a lost session: the worker keeps its job, its ownership node and its
    attempt, and is ready again once reconnected. (kazoo names no session while the connection
    is suspended; taken for a new session, that moment once dropped every job the worker held.)"""
    running = control.write_job("blip")
    proxy = TcpProxy(int(control.cluster.zk_hosts.rsplit(":", 1)[1]))
    port = free_port()
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        control.start_master()
        control.start_worker(zk=f"127.0.0.1:{proxy.port}", metrics_port=port,
                             session_timeout=BLIP_SESSION_TIMEOUT)
        # The worker's own record, not Flink's state: Flink says RUNNING a moment before the
        # worker writes Running, and a blip in that moment leaves the record Submitting until
        # the next pass (read too early here, that once failed this test).
        wait_until(lambda: store.status("blip")[0].phase == Phase.RUNNING, 90,
                   "the job recorded Running")
        before = store.status("blip")[0]
        wait_until(lambda: _readiness(url) == "200 owning 1 of 1 slot(s)", 30, "ready, owning")
        owner = store.zk.exists(f"{store.job_path('blip')}/owner")
        assert owner is not None

        proxy.refuse()
        wait_until(lambda: _readiness(url) == "503 not connected to ZooKeeper", 10,
                   "the worker to see its connection lost")
        # Several reconcile passes (one a second) while the connection is down.
        holds_for(lambda: _readiness(url) == "503 not connected to ZooKeeper", 3,
                  "the worker not acting while its connection is down")
        proxy.heal()

        wait_until(lambda: _readiness(url) == "200 owning 1 of 1 slot(s)", 30,
                   "ready again, owning its job")
        again = store.zk.exists(f"{store.job_path('blip')}/owner")
        assert again is not None and again.czxid == owner.czxid, (
            "the same ownership node: never released, never claimed again")
        after = store.status("blip")[0]
        assert (after.phase, after.attempt, after.flink_job_id, after.since) == (
            Phase.RUNNING, before.attempt, running, before.since), "the same attempt, still Running"
        assert control.cluster.submissions("blip") == [running]
        log = control.log("worker-a")
        assert "session lapsed" not in log and "registered again" not in log, log
    finally:
        proxy.close()


def test_a_master_whose_session_the_server_expires_leads_again_and_acts(
    control: ControlPlane, store: Store, tapped: tuple[str, SessionTap]
) -> None:
    zk, tap = tapped
    control.write_job("expiry-before", state="suspended")
    control.start_master(zk=zk)

    def leading_session() -> int | None:
        """The session of master-a's election node, while it leads."""
        contenders = store.contenders()
        if not contenders or contenders[0][1] != "master-a":
            return None
        stat = store.zk.exists(f"{control.root}/leader/{contenders[0][0]}")
        return stat.ephemeralOwner if stat else None

    first = wait_until(leading_session, 30, "master-a leading")
    wait_until(lambda: store.job("expiry-before"), 30, "the first job synced")
    assert tap.expire(control.cluster.zk_hosts) == first
    expired = time.monotonic()
    wait_until(lambda: (s := leading_session()) and s != first, control.session_timeout + 10,
               "master-a leading again in a new session")
    assert time.monotonic() - expired < control.session_timeout + 5
    control.write_job("expiry-after", state="suspended")
    wait_until(lambda: store.job("expiry-after"), 30, "a job synced in the new session")


def test_a_wedged_client_is_replaced_and_the_process_works_again(control: ControlPlane) -> None:
    """A client whose connection thread is stuck (a state listener of the process's that never
    returns, as one of flinksched's own once did) says it is connected and sends nothing: the
    session keeper gives the process a new client within a session timeout or so."""
    settings = ZkSettings(hosts=control.cluster.zk_hosts, root=control.root,
                          session_timeout=4.0)
    process = connect(settings)
    stuck = process.zk
    release, armed = threading.Event(), threading.Event()

    def wedge(state: str) -> None:
        if state == KazooState.CONNECTED and armed.is_set():
            armed.clear()  # once: the new client's listeners are the same ones
            release.wait()  # kazoo's connection thread, held: no request is sent again

    process.add_state_listener(wedge)
    wake = [stuck._connection._read_sock, stuck._connection._write_sock]
    keeper = keep_session(process, settings)
    try:
        armed.set()
        session, password = stuck.client_id
        expire_session(control.cluster.zk_hosts, session, password)
        expired = time.monotonic()
        wait_until(lambda: stuck.connected and stuck.client_id[0] != session, 10,
                   "the stuck client connected in a new session")
        assert not answers(stuck, "/", 2), "the stuck client still answers"
        replaced = wait_until(lambda: process.zk is not stuck and answers(process.zk, "/", 2),
                              settings.session_timeout * 3, "a new client that answers")
        assert replaced
        took = time.monotonic() - expired
        assert took < settings.session_timeout + 6, f"replaced after {took:.1f}s"
        assert keeper.replacements == 1 and keeper.health()[0]
        process.ensure_layout()  # the store works on the new client
    finally:
        release.set()
        keeper.stop()
        close(process)
    wait_until(lambda: all(sock.fileno() == -1 for sock in wake), 30,
               "the client left behind closed")
