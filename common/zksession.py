"""A fresh ZooKeeper session when the old one cannot come back although a server serves.

A server that lost its data, or was restored from an older copy of it, refuses every client
that has seen a newer transaction than it holds ("client must try another server"): kazoo
reconnects with its old session and last zxid every second or two, forever, and the process
neither leads nor owns anything again. Once a server has served for a whole session timeout
while this client could not connect, the old session is gone whatever the cause (the server
expires it after that long), so nothing is lost by starting a new one: workers register again
and adopt their running attempts, the leader syncs the configs again.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from kazoo.client import KazooClient

logger = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5


def serving(host: str, port: int, timeout: float = 1.0) -> bool:
    """The server answers `srvr` with its mode (it serves clients), or, where `srvr` is not
    among its allowed four-letter words, with that refusal (it runs and answers)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"srvr")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except OSError:
        return False
    return b"Mode:" in answer or b"not in the whitelist" in answer


def host_ports(hosts: str) -> list[tuple[str, int]]:
    """`a:2181,b:2181/chroot` as [(a, 2181), (b, 2181)]."""
    found = []
    for part in hosts.split("/", 1)[0].split(","):
        host, _, port = part.strip().rpartition(":")
        if not host:
            host, port = part.strip(), "2181"
        found.append((host.strip("[]"), int(port)))
    return found


class SessionKeeper:
    """Watches one client; starts it afresh after `patience` seconds of a server serving while
    the client stays disconnected. `on_fresh` runs (in this thread) once the new session is up."""

    def __init__(self, client: KazooClient, hosts: str, patience: float,
                 on_fresh: Callable[[], None] | None = None) -> None:
        self.client = client
        self.servers = host_ports(hosts)
        self.patience = patience
        self.on_fresh = on_fresh
        self._fresh_pending = False  # a fresh session was asked for: run on_fresh once it is up
        self._refused_since: float | None = None  # a server serves, this client is not connected
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zk-session-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL):
            try:
                self.check(time.monotonic())
            except Exception:  # never let the keeper die: it is the way back
                logger.exception("ZooKeeper session keeper: check failed")

    def check(self, now: float) -> bool:
        """One look; True when a fresh session was started."""
        if self.client.connected or self._stop.is_set():
            self._refused_since = None
            if self._fresh_pending and self.client.connected:
                self._fresh_pending = False
                logger.info("ZooKeeper: fresh session 0x%x", self.client.client_id[0])
                if self.on_fresh is not None:
                    self.on_fresh()
            return False
        if not any(serving(host, port) for host, port in self.servers):
            self._refused_since = None  # nobody serves: the old session may still come back
            return False
        if self._refused_since is None:
            self._refused_since = now
            return False
        if now - self._refused_since < self.patience:
            return False
        logger.warning(
            "ZooKeeper serves but has refused this client's session for %.0fs (its data was "
            "lost or rolled back, or the session expired unseen): starting a fresh session",
            now - self._refused_since)
        self._refused_since = None
        self.client.stop()  # a stopped client forgets its session and last zxid
        if self._stop.is_set():
            return False
        self._fresh_pending = True
        self.client.start_async()  # the next check runs on_fresh once the session is up
        return True
