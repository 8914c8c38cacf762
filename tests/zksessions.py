"""A ZooKeeper session expired by the server, as ZooKeeper's own tests do it: a second client
opens the session with its id and password, then closes it. The first client's connection is
dropped; reconnecting, it is told its session expired, its ephemeral nodes are gone, and it
starts a new session. Nothing in the process is touched: this is the expiry a loaded machine
or a long garbage-collection pause brings.

A process's session password never leaves it, so a proxy between the process and ZooKeeper
reads it from the server's answer to each connect request.
"""

from __future__ import annotations

import struct
import threading

from kazoo.client import KazooClient

from tests.tcpproxy import TcpProxy


class SessionTap:
    """Learns the session of the client connecting through `proxies` (one per server of an
    ensemble): the id and password of the newest session a server granted it."""

    def __init__(self, *proxies: TcpProxy) -> None:
        self._lock = threading.Lock()
        self._buffers: dict[tuple[int, int], bytes] = {}
        self._done: set[tuple[int, int]] = set()
        self.session: tuple[int, bytes] | None = None
        self.granted = 0  # sessions granted so far, new or resumed
        for index, proxy in enumerate(proxies):
            proxy.inspect = lambda number, data, index=index: self._inspect((index, number),
                                                                          data)

    def _inspect(self, connection: tuple[int, int], data: bytes) -> None:
        with self._lock:
            if connection in self._done:
                return
            buffer = self._buffers.get(connection, b"") + data
            if len(buffer) < 4 or len(buffer) < 4 + struct.unpack(">i", buffer[:4])[0]:
                self._buffers[connection] = buffer
                return
            self._buffers.pop(connection, None)
            self._done.add(connection)
            # ConnectResponse: protocolVersion, timeOut, sessionId, passwd (length-prefixed)
            _, timeout, session_id, length = struct.unpack(">iiqi", buffer[4:24])
            if timeout > 0:  # 0: the server says the session expired
                self.session = (session_id, buffer[24:24 + length])
                self.granted += 1

    def expire(self, zk_hosts: str) -> int:
        """Have the server expire the newest session; returns its id."""
        with self._lock:
            assert self.session is not None, "no client has connected through the proxy"
            session_id, password = self.session
        expire_session(zk_hosts, session_id, password)
        return session_id


def expire_session(zk_hosts: str, session_id: int, password: bytes) -> None:
    """Have the server end the session: its ephemeral nodes go, its client learns of it when
    it reconnects."""
    other = KazooClient(hosts=zk_hosts, client_id=(session_id, password))
    other.start(timeout=10)
    other.stop()  # closes the session itself
    other.close()
