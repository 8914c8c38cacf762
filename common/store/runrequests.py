"""Turns at a session cluster's run requests, shared by every flinksched process that reaches it.

A session JobManager runs each `POST /jars/<id>/run` in a thread of its own, and the
environment a program builds is found through a thread-local factory and, beside it, one
static factory per JobManager. A Python program builds its environment on the threads of
its Py4J gateway, so it finds the static one: whichever run request set it last, of any job.
Running beside another request it would take that request's job id and restore point, or,
once the other cleared it, a local environment inside the JobManager whose run never ends.

So a Python run request holds the cluster alone (a ZooKeeper write lock), and every other
run request shares it (a read lock). The lock is keyed by the cluster's REST address and
lives outside any flinksched root, at `/flinksched-run-requests/<sha256 of the address>`:
two flinksched installations with their own roots that submit to one cluster take turns too.
Clients that are not flinksched (a person's `flink run`) are not coordinated.
"""

from __future__ import annotations

import hashlib
import logging

from kazoo.exceptions import LockTimeout, NoAuthError
from kazoo.recipe.lock import Lock

from common.store.nodes import ZkNodes

logger = logging.getLogger(__name__)

RUN_REQUEST_LOCKS = "/flinksched-run-requests"


def run_request_path(rest_url: str) -> str:
    """The lock of the cluster at `rest_url` (its address as flinksched's configs give it)."""
    key = hashlib.sha256(rest_url.rstrip("/").encode()).hexdigest()[:16]
    return f"{RUN_REQUEST_LOCKS}/{key}"


class RunRequestTurns(ZkNodes):
    def take_run_request_turn(self, rest_url: str, alone: bool, timeout: float,
                              holder: str) -> Lock | None:
        """Wait at most `timeout` seconds for a turn at the cluster's run requests: alone
        (`alone`) or beside other shared turns. The held lock, to give back with
        `end_run_request_turn`; None when the turn did not come in time. A ZooKeeper that
        refuses the lock's node to this identity is logged and submits without a turn."""
        path = run_request_path(rest_url)
        lock = (self.zk.WriteLock if alone else self.zk.ReadLock)(path, holder)
        try:
            acquired = lock.acquire(timeout=timeout)
        except LockTimeout:
            acquired = False
        except NoAuthError:
            logger.warning("ZooKeeper refused this identity the run-request lock %s of cluster "
                           "%s: submitting without a turn (Python run requests beside others "
                           "may then take their job ids)", path, rest_url)
            return _NO_LOCK
        return lock if acquired else None  # a lock that timed out removed its node

    def end_run_request_turn(self, lock: Lock) -> None:
        if lock is not _NO_LOCK:
            lock.release()


class _Unlocked:
    """The turn of a process whose ZooKeeper identity may not create the lock's node."""

    def release(self) -> bool:
        return True


_NO_LOCK: Lock = _Unlocked()
