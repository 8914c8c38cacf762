"""Opening a ZooKeeper session, with a one-line error when nobody answers."""

from __future__ import annotations

import logging

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL, make_digest_acl

from common.errors import StoreError
from common.settings import ZkSettings
from common.store.session import SessionKeeper
from common.store.zookeeper import Store

logger = logging.getLogger(__name__)


def node_acl(settings: ZkSettings) -> list[ACL] | None:
    """With digest credentials, every node created is writable by that identity only, and
    readable by the read identity when there is one; nobody else may even read it."""
    if not settings.auth:
        return None
    acl = [make_digest_acl(*_identity(settings.auth, "--zk-auth"), all=True)]
    if settings.read_identity:
        user, password = _identity(settings.read_identity, "--zk-read-identity")
        acl.append(make_digest_acl(user, password, read=True))
    return acl


def _identity(value: str, option: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise StoreError(f"{option} must be USER:PASSWORD")
    return user, password


def new_client(settings: ZkSettings) -> KazooClient:
    """A client for these settings, not started."""
    return KazooClient(
        default_acl=node_acl(settings),
        hosts=settings.hosts,
        timeout=settings.session_timeout,
        connection_retry={"max_tries": -1, "delay": 0.2, "max_delay": 2.0},
        command_retry={"max_tries": 3, "delay": 0.1, "max_delay": 1.0},
        auth_data=[("digest", settings.auth)] if settings.auth else None,
    )


def connect(settings: ZkSettings, timeout: float = 5.0) -> Store:
    """A started client wrapped in a Store; StoreError when ZooKeeper cannot be reached."""
    client = new_client(settings)
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError:
        client.stop()
        client.close()
        raise StoreError(
            f"cannot reach ZooKeeper at {settings.hosts} within {timeout:g}s "
            "(set --zk or FLINKSCHED_ZK)"
        ) from None
    store = Store(client, settings.root)
    store.ensure_layout()
    return store


def keep_session(store: Store, settings: ZkSettings) -> SessionKeeper:
    """For a long-running process: a new client when ZooKeeper serves but refuses the old
    session, or the client is wedged, for a whole session timeout (`common.store.session`); the
    layout is made again in its session, for the data may be gone."""
    keeper = SessionKeeper(store, settings.hosts, settings.session_timeout,
                           make_client=lambda: new_client(settings),
                           on_fresh=store.ensure_layout)
    keeper.start()
    return keeper


def close(store: Store) -> None:
    try:
        store.zk.stop()
        store.zk.close()
    except Exception:  # closing is best effort; the process is leaving anyway
        logger.debug("error while closing the ZooKeeper client", exc_info=True)
