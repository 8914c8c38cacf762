"""Turns at session clusters' run requests, taken in ZooKeeper (`common.store.runrequests`
says why a Python run request needs the cluster alone)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from common.errors import RunRequestBusy, StoreError
from common.store.zookeeper import Store

logger = logging.getLogger(__name__)

# A Python run request waits this long for the shared turns before it (jar and SQL run
# requests, a second or two each); one that waits longer is tried again by the next cycle.
ALONE_WAIT = 30.0
# A shared turn waits this long for a Python run request (tens of seconds: the driver starts
# Python, which builds the job graph) and is then tried again, letting other jobs' cycles
# on the cluster have their turn meanwhile.
SHARED_WAIT = 5.0


class RunRequestTurn(Protocol):
    def __call__(self, rest_url: str, alone: bool) -> AbstractContextManager[None]: ...


@contextlib.contextmanager
def any_time(rest_url: str, alone: bool) -> Iterator[None]:
    """No coordination (a worker without ZooKeeper: tests of one process)."""
    yield


def zookeeper_turns(store: Store, holder: str) -> RunRequestTurn:
    """Turns taken as `holder` (the worker's id) in the store's ZooKeeper."""

    @contextlib.contextmanager
    def turn(rest_url: str, alone: bool) -> Iterator[None]:
        wait = ALONE_WAIT if alone else SHARED_WAIT
        lock = store.take_run_request_turn(rest_url, alone, wait, holder)
        if lock is None:
            kind = "a turn alone (a Python job's)" if alone else "a turn beside other jobs'"
            raise RunRequestBusy(
                f"{rest_url}: waited {wait:g}s for {kind} at the cluster's run requests, "
                "which another flinksched run request holds")
        try:
            yield
        finally:
            try:
                store.end_run_request_turn(lock)
            except StoreError as exc:  # its node is ephemeral: it goes with the session
                logger.warning("turn at the run requests of %s not given back: %s",
                               rest_url, exc)

    return turn
