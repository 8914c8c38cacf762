"""The one way flinksched watches ZooKeeper: one-shot watches armed again from each event.

ZooKeeper's own watches, set with asynchronous calls: nothing here blocks or starts a thread.
(kazoo's DataWatch and ChildrenWatch recipes start a thread per watch on every reconnection; a
worker with a hundred jobs on a flapping connection would pile up thousands of them.) Within
a session the server keeps watches across reconnections. A new session (the old one expired,
or the session keeper started a fresh one) has none: every watch still wanted is armed again
once the client is connected, and reports the value it finds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import KazooState

logger = logging.getLogger(__name__)


class Failed:
    """The read behind a watch failed: the value is unknown until the next report."""


FAILED = Failed()
# `report` gets node data (bytes), None for no node, or FAILED; children: a list or FAILED.
DataReport = Callable[[bytes | Failed | None], None]
ChildrenReport = Callable[[list[str] | Failed], None]


class Watches:
    """Every watch one client keeps, armed again after a new session."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._armers: list[tuple[Callable[[], bool], Callable[[], None]]] = []
        self._lost = False
        self._lost_callbacks: list[Callable[[], None]] = []
        client.add_listener(self._state)

    def data(self, path: str, report: DataReport,
             active: Callable[[], bool] = lambda: True) -> None:
        """`report` gets the node's data now and after every change, while `active()`. An
        exists-watch fires on creation, change and deletion alike."""

        def arm() -> None:
            if not active():
                return

            def read(result: IAsyncResult) -> None:
                try:
                    data, _ = result.get()
                    report(data)
                except NoNodeError:
                    report(None)  # deleted since: the exists-watch reports it
                except KazooException:
                    report(FAILED)

            def existing(result: IAsyncResult) -> None:
                try:
                    stat = result.get()
                except KazooException:
                    report(FAILED)
                    return
                if stat is None:
                    report(None)
                else:
                    self.client.get_async(path).rawlink(read)

            self.client.exists_async(path, watch=lambda event: arm()).rawlink(existing)

        self._keep(active, arm)

    def children(self, path: str, report: ChildrenReport,
                 active: Callable[[], bool] = lambda: True) -> None:
        """`report` gets the node's children now and after every change, while `active()`."""

        def arm() -> None:
            if not active():
                return

            def listed(result: IAsyncResult) -> None:
                try:
                    report(list(result.get()))
                except KazooException:
                    report(FAILED)

            self.client.get_children_async(path, watch=lambda event: arm()).rawlink(listed)

        self._keep(active, arm)

    def on_session_lost(self, callback: Callable[[], None]) -> None:
        """Called when the session is lost, and with it every watch a reader set itself."""
        self._lost_callbacks.append(callback)

    def _keep(self, active: Callable[[], bool], arm: Callable[[], None]) -> None:
        with self._lock:
            self._armers = [(a, f) for a, f in self._armers if a()]
            self._armers.append((active, arm))
        arm()

    def _state(self, state: Any) -> None:
        """In kazoo's connection thread: nothing here may block."""
        if state == KazooState.LOST:
            self._lost = True
            for callback in list(self._lost_callbacks):
                callback()
        elif state == KazooState.CONNECTED and self._lost:
            self._lost = False
            with self._lock:
                armers = [(a, f) for a, f in self._armers if a()]
                self._armers = armers
            for _, arm in armers:
                arm()  # asynchronous calls only
