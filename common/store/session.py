"""A long-running process's way back to a working ZooKeeper session, whatever broke it.

Two ways a client can be stuck while a server serves:
- **Refused.** A server that lost its data, or was restored from an older copy of it, refuses
  every client that has seen a newer transaction than it holds ("client must try another
  server"): kazoo reconnects with its old session and last zxid every second or two, forever.
- **Wedged.** The client says it is connected, but sends nothing: its connection thread is
  blocked in a state listener that does not return (`common.store.listeners`; see
  `common.store.watches` for how one once did it).

Once a server has served for a whole session timeout while this client was refused or
wedged, the old session is gone whatever the cause (the server expires it after that long),
so nothing is lost by starting over: the process gets a new client, workers register again and
adopt their running attempts, the leader syncs the configs again. The old client is left
behind with every caller it blocked released. If even new clients get no working session
while a server serves, `health()` says so, and /healthz fails so that the process is restarted.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss

logger = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5
UNHEALTHY_AFTER = 3  # session timeouts without a working session while a server serves


class ClientHolder(Protocol):
    """What holds the client the process works with (the store)."""

    zk: Any

    def replace_client(self, client: Any) -> None: ...
    def listeners_busy_for(self, now: float | None = None) -> float: ...


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
    """Watches one process's client; replaces it after `patience` seconds of a server serving
    while the client is refused or wedged. `on_fresh` runs (in this thread) once the new
    client has its session."""

    def __init__(self, holder: ClientHolder, hosts: str, patience: float,
                 make_client: Callable[[], Any],
                 on_fresh: Callable[[], None] | None = None) -> None:
        self.holder = holder
        self.servers = host_ports(hosts)
        self.patience = patience
        self.make_client = make_client
        self.on_fresh = on_fresh
        self.replacements = 0
        self._fresh_pending = False  # a new client was made: run on_fresh once it is up
        self._broken_since: float | None = None  # a server serves, the client does not work
        self._replaced_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zk-session-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def health(self, now: float | None = None) -> tuple[bool, str]:
        """False once a server has served for UNHEALTHY_AFTER session timeouts while this
        process had no working session, new clients notwithstanding."""
        now = time.monotonic() if now is None else now
        if self._broken_since is None:
            return True, "ZooKeeper session working"
        broken = now - self._broken_since
        ok = broken < UNHEALTHY_AFTER * self.patience
        return ok, (f"no working ZooKeeper session for {broken:.0f}s while a server serves "
                    f"({self.replacements} new client(s) tried)")

    def _run(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL):
            try:
                self.check(time.monotonic())
            except Exception:  # never let the keeper die: it is the way back
                logger.exception("ZooKeeper session keeper: check failed")

    def check(self, now: float) -> bool:
        """One look; True when the client was replaced."""
        client = self.holder.zk
        if self._stop.is_set():
            return False
        stalled = self.holder.listeners_busy_for(now)
        if client.connected and stalled < self.patience:
            if self._broken_since is not None:
                logger.info("ZooKeeper: the session works again")
            self._broken_since = None
            if self._fresh_pending:
                self._fresh_pending = False
                logger.info("ZooKeeper: fresh session 0x%x", client.client_id[0])
                if self.on_fresh is not None:
                    self.on_fresh()
            return False
        if not any(serving(host, port) for host, port in self.servers):
            self._broken_since = None  # nobody serves: the old session may still come back
            return False
        if self._broken_since is None:
            # A wedge is dated from its listener's call: it has lasted that long already.
            self._broken_since = now - stalled
        since = max(self._broken_since, self._replaced_at or self._broken_since)
        if now - since < self.patience:
            return False
        if stalled >= self.patience:
            why = f"has been wedged for {stalled:.0f}s by a state listener that does not return"
        else:
            why = (f"has been refused a session for {now - since:.0f}s (ZooKeeper's data was "
                   "lost or rolled back, or the session expired unseen)")
        logger.warning("ZooKeeper serves but this process's client %s: starting a new client "
                       "with a fresh session", why)
        self._replace(client, now)
        return True

    def _replace(self, old: Any, now: float) -> None:
        new = self.make_client()
        self.holder.replace_client(new)
        self._replaced_at = now
        self.replacements += 1
        self._fresh_pending = True
        abandon(old)
        new.start_async()  # a later check runs on_fresh once the session is up


def abandon(client: Any) -> None:
    """Leave a client behind: every caller it holds is released with ConnectionLoss (a
    request waiting in its queue, one sent and unanswered, a call blocked waking its
    connection thread), then it is stopped off this thread (a wedged one may never stop) and
    its sockets closed."""
    sockets = []
    if isinstance(client, KazooClient):
        connection = client._connection
        sockets = [s for s in (connection._read_sock, connection._write_sock) if s is not None]
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a blocked send fails at once
            except OSError:
                pass
        for _, result in [*list(client._queue), *list(client._pending)]:
            if result is not None:
                try:
                    result.set_exception(ConnectionLoss("client replaced"))
                except Exception:  # already answered
                    pass

    def stop() -> None:
        try:
            client.stop()
        except Exception:  # a wedged client may not stop in time; it is garbage either way
            logger.debug("abandoned ZooKeeper client did not stop cleanly", exc_info=True)
        for sock in sockets:
            sock.close()

    threading.Thread(target=stop, name="zk-abandoned-client", daemon=True).start()
