"""Every kazoo state listener of one store, timed.

kazoo calls state listeners in its connection thread, the one thread that sends and receives
for the client: a listener may record a state or hand work to another thread, never wait.
One that has not returned for a session timeout has wedged the client (it sends nothing
again, and its session expires while it still says it is connected), and the session keeper
gives the process a new client (`common.store.session`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient

Listener = Callable[[Any], Any]


class StateListeners:
    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._running: dict[int, float] = {}  # a call in progress -> when it began
        self._calls = 0

    def add(self, listener: Listener) -> None:
        def timed(state: Any) -> Any:
            with self._lock:
                self._calls += 1
                call = self._calls
                self._running[call] = time.monotonic()
            try:
                return listener(state)
            finally:
                with self._lock:
                    del self._running[call]

        with self._lock:
            self._listeners.append(timed)
        self.client.add_listener(timed)

    def busy_for(self, now: float | None = None) -> float:
        """How long the oldest call still running has run (0: none runs)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            started = min(self._running.values(), default=None)
        return 0.0 if started is None else now - started

    def move_to(self, client: KazooClient) -> None:
        """Listen to `client` from now on (a replaced client)."""
        with self._lock:
            listeners = list(self._listeners)
            old, self.client = self.client, client
        for listener in listeners:
            old.remove_listener(listener)
            client.add_listener(listener)
