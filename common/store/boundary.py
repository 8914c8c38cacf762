"""ZooKeeper's exceptions stop at the store: every public method of a store class raises the
project's StoreError instead (StoreAccessDenied when ZooKeeper refused this identity,
StoreUnavailable for the rest: no connection, an expired session, a timeout), naming what it
was doing. Callers catch one tree; the reason kazoo gave stays in the message and the cause.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.exceptions import KazooException, NoAuthError
from kazoo.handlers.threading import KazooTimeoutError

from common.errors import StoreAccessDenied, StoreUnavailable

C = TypeVar("C", bound=type)


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except NoAuthError as exc:
            raise StoreAccessDenied(
                "ZooKeeper refused access to the flinksched root: no access for this "
                "identity, or read-only access and a command that writes (check --zk-auth / "
                "FLINKSCHED_ZK_AUTH)") from exc
        except (KazooException, KazooTimeoutError) as exc:
            raise StoreUnavailable(f"ZooKeeper: {method.__name__} failed: {exc!r}") from exc

    return call


def kazoo_errors_stop_here(cls: C) -> C:
    """Wrap the class's public methods, its own and those it inherits from the store's
    modules, so that no kazoo exception leaves them."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attribute = inspect.getattr_static(cls, name)
        if inspect.isfunction(attribute) and attribute.__module__.startswith("common.store."):
            setattr(cls, name, _translated(attribute))
    return cls
