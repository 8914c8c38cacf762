"""The session keeper's decision: a fresh session only after a server has served for a whole
session timeout while this client could not connect; never while nobody serves."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from common.zksession import SessionKeeper, host_ports, serving


class FakeClient:
    """Just what the keeper touches of a KazooClient."""

    def __init__(self) -> None:
        self.connected = False
        self.client_id = (0x1234, b"")
        self.calls: list[str] = []

    def stop(self) -> None:
        self.calls.append("stop")

    def start_async(self) -> threading.Event:
        self.calls.append("start")
        return threading.Event()


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


def test_refused_for_a_session_timeout_starts_fresh_and_runs_on_fresh(
        answering_server: int) -> None:
    client = FakeClient()
    fresh: list[int] = []
    keeper = SessionKeeper(client, f"127.0.0.1:{answering_server}", patience=6.0,
                           on_fresh=lambda: fresh.append(1))
    assert serving("127.0.0.1", answering_server)
    assert not keeper.check(100.0), "first sight of a refusal starts the clock"
    assert not keeper.check(105.9)
    assert keeper.check(106.0)
    assert client.calls == ["stop", "start"]
    assert fresh == [], "on_fresh waits for the new session"
    client.connected = True
    keeper.check(106.5)
    assert fresh == [1]
    keeper.check(107.0)
    assert fresh == [1], "once"


def test_a_connected_moment_resets_the_clock(answering_server: int) -> None:
    client = FakeClient()
    keeper = SessionKeeper(client, f"127.0.0.1:{answering_server}", patience=6.0)
    keeper.check(0.0)
    client.connected = True
    keeper.check(3.0)
    client.connected = False
    keeper.check(4.0)
    assert not keeper.check(9.0), "6 s since the refusals began again, not since 0"
    assert client.calls == []


def test_nobody_serving_keeps_the_old_session() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = FakeClient()
    keeper = SessionKeeper(client, f"127.0.0.1:{port}", patience=1.0)
    for now in (0.0, 5.0, 50.0):
        assert not keeper.check(now)
    assert client.calls == [], "a server that is down may come back with the session intact"
