"""ZooKeeper faults for tests, through kazoo's own mechanism.

These send the same internal events as kazoo.testing.harness (expire_session,
lose_connection); that module itself is not imported because it pulls in TLS test-cluster
dependencies (pyOpenSSL, pyjks) that nothing here needs.
"""

from __future__ import annotations

import threading

from kazoo.client import KazooClient
from kazoo.protocol.connection import _CONNECTION_DROP, _SESSION_EXPIRED
from kazoo.protocol.states import KazooState


def _break(client: KazooClient, event: object, expected: str, timeout: float) -> None:
    lost, back = threading.Event(), threading.Event()

    def watch(state: str) -> bool | None:
        if state == expected:
            lost.set()
        elif lost.is_set() and state == KazooState.CONNECTED:
            back.set()
            return True
        return None

    client.add_listener(watch)
    client._call(event, None)
    if not lost.wait(timeout):
        raise AssertionError(f"the client never reported {expected}")
    if not back.wait(timeout * 3):
        raise AssertionError("the client did not reconnect")


def expire_session(client: KazooClient, timeout: float = 5.0) -> None:
    """The server forgets the session: ephemeral nodes go, the client gets a new session."""
    _break(client, _SESSION_EXPIRED, KazooState.LOST, timeout)


def lose_connection(client: KazooClient, timeout: float = 5.0) -> None:
    """The TCP connection drops; the session survives if the client reconnects in time."""
    _break(client, _CONNECTION_DROP, KazooState.SUSPENDED, timeout)
