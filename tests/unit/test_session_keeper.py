"""The session keeper's decision: a new client only after a server has served for a whole
session timeout while this one was refused or wedged; never while nobody serves; /healthz
fails when new clients do not help either."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from common.store.session import UNHEALTHY_AFTER, SessionKeeper, host_ports, serving
from tests.waiting import wait_until


class FakeClient:
    """Just what the keeper touches of a KazooClient."""

    def __init__(self, log: list[str], number: int) -> None:
        self.connected = False
        self.client_id = (0x1234 + number, b"")
        self.log = log
        self.number = number

    def stop(self) -> None:
        self.log.append(f"stop {self.number}")

    def close(self) -> None:
        pass

    def start_async(self) -> threading.Event:
        self.log.append(f"start {self.number}")
        return threading.Event()


class Holder:
    """The store's part: holds the client, replaced by the keeper's new ones."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.made = 0
        self.zk = self.make()
        self.listener_began: float | None = None  # a state listener runs since then

    def listeners_busy_for(self, now: float | None = None) -> float:
        return 0.0 if self.listener_began is None or now is None else now - self.listener_began

    def make(self) -> FakeClient:
        self.made += 1
        return FakeClient(self.log, self.made)

    def replace_client(self, client: FakeClient) -> None:
        self.log.append(f"replace {self.zk.number} by {client.number}")
        self.zk = client


def keeper_of(holder: Holder, port: int, patience: float = 6.0,
              on_fresh: Callable[[], None] | None = None) -> SessionKeeper:
    return SessionKeeper(holder, f"127.0.0.1:{port}", patience=patience,
                         make_client=holder.make, on_fresh=on_fresh)


@pytest.fixture
def answering_server() -> Iterator[int]:
    """A socket that answers `srvr` the way a serving ZooKeeper does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    done = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(16)
                conn.sendall(b"Zookeeper version: 3.8\nMode: standalone\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    done.set()
    thread.join(2)
    listener.close()


def test_hosts_are_parsed_with_and_without_ports_and_chroot() -> None:
    assert host_ports("a:1,b:2/chroot") == [("a", 1), ("b", 2)]
    assert host_ports("zk") == [("zk", 2181)]


def test_refused_for_a_session_timeout_gets_a_new_client_and_runs_on_fresh(
        answering_server: int) -> None:
    holder = Holder()
    fresh: list[int] = []
    keeper = keeper_of(holder, answering_server, on_fresh=lambda: fresh.append(1))
    assert serving("127.0.0.1", answering_server)
    assert not keeper.check(100.0), "first sight of a refusal starts the clock"
    assert not keeper.check(105.9)
    assert keeper.check(106.0)
    assert holder.log[0] == "replace 1 by 2" and "start 2" in holder.log
    wait_until(lambda: "stop 1" in holder.log, 5, "the old client stopped, off the keeper")
    assert fresh == [], "on_fresh waits for the new session"
    holder.zk.connected = True
    keeper.check(106.5)
    assert fresh == [1]
    keeper.check(107.0)
    assert fresh == [1], "once"


def test_a_connected_moment_resets_the_clock(answering_server: int) -> None:
    holder = Holder()
    keeper = keeper_of(holder, answering_server)
    keeper.check(0.0)
    holder.zk.connected = True
    keeper.check(3.0)
    holder.zk.connected = False
    keeper.check(4.0)
    assert not keeper.check(9.0), "6 s since the refusals began again, not since 0"
    assert holder.made == 1


def test_a_client_wedged_by_a_listener_is_replaced_after_a_session_timeout(
        answering_server: int) -> None:
    holder = Holder()
    wedged = holder.zk
    wedged.connected = True
    holder.listener_began = 100.0
    keeper = keeper_of(holder, answering_server)
    assert not keeper.check(101.0), "a listener running for a second is no wedge"
    assert not keeper.check(105.9)
    assert keeper.check(106.0), "one that has run for a session timeout is"
    assert holder.zk is not wedged and "replace 1 by 2" in holder.log


def test_a_connected_client_whose_listeners_return_is_kept(answering_server: int) -> None:
    """However long its requests take: a slow server or a starved process is no wedge."""
    holder = Holder()
    holder.zk.connected = True
    keeper = keeper_of(holder, answering_server)
    for now in (0.0, 10.0, 100.0):
        assert not keeper.check(now)
    assert holder.made == 1


def test_health_fails_when_new_clients_get_no_session_either(answering_server: int) -> None:
    holder = Holder()
    keeper = keeper_of(holder, answering_server, patience=2.0)
    keeper.check(0.0)
    for now in (2.0, 4.0):
        assert keeper.check(now), "a new client each session timeout"
    assert keeper.health(5.9)[0]
    ok, why = keeper.health(UNHEALTHY_AFTER * 2.0)
    assert not ok and "no working ZooKeeper session for 6s" in why and "2 new client" in why
    holder.zk.connected = True
    keeper.check(7.0)
    assert keeper.health(7.0)[0], "healthy again once a session works"


def test_nobody_serving_keeps_the_old_session() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    holder = Holder()
    keeper = keeper_of(holder, port, patience=1.0)
    for now in (0.0, 5.0, 50.0):
        assert not keeper.check(now)
    assert holder.made == 1, "a server that is down may come back with the session intact"
    assert keeper.health(50.0)[0]
