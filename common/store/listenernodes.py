"""The store's nodes for status pushed by Flink: one event node per job, one heartbeat node
per cluster's listener (see `common.store.pushed` for what they hold).

    events/<name prefix>     the newest status change the listener pushed for the job; the
                             job's supervisor creates it (a job flinksched does not run has
                             none, so the listener skips its events) and watches it
    listeners/<cluster>      ephemeral, the listener's heartbeat and counters
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.interfaces import IAsyncResult

from common.errors import StoreError, Unavailable
from common.flink.jobids import name_prefix
from common.store.nodes import ZkNodes
from common.store.pushed import PushedEvent, PushHealth, parse_event, parse_heartbeat, push_health

logger = logging.getLogger(__name__)


class ListenerNodes(ZkNodes):
    def events_path(self, name: str) -> str:
        return self._path("events", name_prefix(name))

    def listener_path(self, cluster: str) -> str:
        return self._path("listeners", cluster)

    def register_push(self, name: str, then: Callable[[], None] = lambda: None) -> None:
        """Create the job's event node: from now on the listener pushes its status changes;
        `then` runs once the node exists. Asynchronous, off a starting supervisor's path (a
        worker taking thousands of jobs waits for none of these round trips); a node that
        cannot be made is logged, and the job is watched by polling alone."""

        def made(result: IAsyncResult) -> None:
            try:
                result.get()
            except NodeExistsError:
                pass
            except KazooException as exc:
                logger.warning("job %s: its status push node was not created (%r); watched by "
                               "polling alone", name, exc)
            then()

        self.zk.create_async(self.events_path(name), b"").rawlink(made)

    def drop_push(self, name: str) -> None:
        try:
            self.zk.delete(self.events_path(name))
        except NoNodeError:
            pass

    def watch_pushed(self, name: str,
                     report: Callable[[PushedEvent | Unavailable | None], None],
                     active: Callable[[], bool]) -> None:
        """`report` gets the job's pushed event after every push (None: none yet, Unavailable:
        it could not be read or was rejected, logged with the reason) while `active()`."""

        def changed(data: bytes | Unavailable | None) -> None:
            if isinstance(data, Unavailable):
                report(data)
                return
            try:
                report(parse_event(name, data or b""))
            except StoreError as exc:
                logger.warning("job %s: %s; ignored (polling still watches the job)", name, exc)
                report(Unavailable(str(exc)))

        self.watches.data(self.events_path(name), changed, active)

    def listener(self, cluster: str) -> PushHealth:
        """How the cluster is watched, from its listener's heartbeat node."""
        if not cluster or "/" in cluster:
            return push_health(None, 0.0, time.time(), f"no listener node for {cluster!r}")
        try:
            data, stat = self.zk.get(self.listener_path(cluster))
        except NoNodeError:
            return push_health(None, 0.0, time.time())
        except KazooException as exc:
            return push_health(None, 0.0, time.time(), f"heartbeat not read: {exc!r}")
        try:
            heartbeat = parse_heartbeat(cluster, data)
        except StoreError as exc:
            return push_health(None, 0.0, time.time(), str(exc))
        return push_health(heartbeat, stat.mtime / 1000.0, time.time())
