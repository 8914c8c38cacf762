"""When a worker may act: connected to ZooKeeper, in the session its ownerships belong to.

kazoo connection listeners must not block, so the listener only records the state change.
A SUSPENDED connection pauses every Flink action at once; past a local deadline shorter than
the session timeout the worker gives its jobs up, because another worker may own them by then.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from kazoo.client import KazooState

logger = logging.getLogger(__name__)


class Connection(Protocol):
    """What the guard watches (the store): whether connected, and the client's states."""

    @property
    def connected(self) -> bool: ...
    def add_state_listener(self, listener: Any) -> None: ...


class ConnectionGuard:
    def __init__(self, connection: Connection, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self._lock = threading.Lock()
        self._suspended_at: float | None = None
        self._lapsed = False
        connection.add_state_listener(self._on_state)

    def _on_state(self, state: str) -> None:
        with self._lock:
            if state == KazooState.CONNECTED:
                self._suspended_at = None
            elif state == KazooState.SUSPENDED:
                self._suspended_at = time.monotonic()
            elif state == KazooState.LOST:
                self._lapsed = True
        logger.info("ZooKeeper connection %s", state)

    def can_act(self) -> bool:
        """True only while connected; disconnection pauses actions immediately."""
        with self._lock:
            if self._suspended_at is not None:
                if time.monotonic() - self._suspended_at >= self.deadline:
                    self._lapsed = True
                return False
        return self.connection.connected

    def take_lapse(self) -> bool:
        """True once after ownerships may have lapsed (LOST, or SUSPENDED past the deadline)."""
        self.can_act()
        with self._lock:
            lapsed, self._lapsed = self._lapsed, False
            return lapsed
