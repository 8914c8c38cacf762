"""The one way flinksched watches ZooKeeper: one-shot watches armed again from each event.

ZooKeeper's own watches, set with asynchronous calls. (kazoo's DataWatch and ChildrenWatch
recipes start a thread per watch on every reconnection; a worker with a hundred jobs on a
flapping connection would pile up thousands of them.) Within a session the server keeps
watches across reconnections. A new session (the old one expired, or the session keeper
started a fresh one) has none: every watch still wanted is armed again once the client is
connected, and reports the value it finds.

That re-arming never runs in kazoo's connection thread, where state listeners are called.
Each call, asynchronous or not, writes a byte to a socket pair that only the connection thread
drains: a few hundred calls made from that thread fill the socket's buffer, and the thread
waits on itself for good (a worker holding some forty jobs never sent another request). The
listener only records the change; one short-lived thread per burst of changes does the work.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import KazooState

from common.errors import Unavailable
from common.store.listeners import StateListeners

logger = logging.getLogger(__name__)


# `report` gets node data (bytes), None for no node, or Unavailable (the read behind the
# watch failed: the value is unknown until the next report); children: a list or Unavailable.
DataReport = Callable[[bytes | Unavailable | None], None]
ChildrenReport = Callable[[list[str] | Unavailable], None]


class Watches:
    """Every watch one client keeps, armed again after a new session."""

    def __init__(self, client: KazooClient, listeners: StateListeners | None = None) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._armers: list[tuple[Callable[[], bool], Callable[[], None]]] = []
        self._lost = False
        self._sessions = 0  # new sessions seen: a re-arm of an older one is skipped
        self._lost_callbacks: list[Callable[[], None]] = []
        self._pending: deque[Callable[[], None]] = deque()
        self._draining = False
        (listeners or StateListeners(client)).add(self._state)

    def move_to(self, client: KazooClient) -> None:
        """Keep every watch on `client` from now on (a replaced client, whose listeners the
        caller moved): armed once it is connected, as after any new session."""
        self._lost = True
        self.client = client
        if client.connected:
            self._state(KazooState.CONNECTED)

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
                except KazooException as exc:
                    report(Unavailable(f"{path} not read: {exc!r}"))

            def existing(result: IAsyncResult) -> None:
                try:
                    stat = result.get()
                except KazooException as exc:
                    report(Unavailable(f"{path} not read: {exc!r}"))
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
                except KazooException as exc:
                    report(Unavailable(f"{path} not read: {exc!r}"))

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
        """In kazoo's connection thread: records the change and hands the work on; it never
        calls the client (see the module's docstring)."""
        if state == KazooState.LOST:
            self._lost = True
            self._hand_off(self._session_lost)
        elif state == KazooState.CONNECTED and self._lost:
            self._lost = False
            self._sessions += 1
            session = self._sessions
            self._hand_off(lambda: self._arm_again(session))

    def _session_lost(self) -> None:
        for callback in list(self._lost_callbacks):
            callback()

    def _arm_again(self, session: int) -> None:
        with self._lock:
            self._armers = [(a, f) for a, f in self._armers if a()]
            armers = list(self._armers)
        for _, arm in armers:
            if session != self._sessions:  # lost again meanwhile: the newer re-arm does it
                return
            arm()

    def _hand_off(self, work: Callable[[], None]) -> None:
        """Run `work` in the watches' own thread, in the order handed off."""
        with self._lock:
            self._pending.append(work)
            if self._draining:
                return
            self._draining = True
        threading.Thread(target=self._drain, name="zk-watches", daemon=True).start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    return
                work = self._pending.popleft()
            try:
                work()
            except Exception:  # a failed re-arm must not stop the ones after it
                logger.exception("ZooKeeper watches: re-arming after a new session failed")
