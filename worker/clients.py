"""Flink REST clients shared by a worker's supervisors, one per cluster, with the answers
every supervisor needs (the cluster's config, its job list) cached for all of them.

A worker watches the state of its running jobs through one `GET /jobs` per cluster and poll
interval (`ClusterStates`), not one `GET /jobs/<id>/status` per job: with 100 jobs on a
worker that is one request a second instead of a hundred. A change in the listing wakes the
job's supervisor at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from common.errors import FlinkschedError
from common.flink.access import ClusterAccess
from common.flink.client import MAX_CONNECTIONS, FlinkClient
from common.flink.jobids import NAME_PREFIX_LENGTH
from common.flink.versions import FlinkVersion
from common.keyedlocks import KeyedLocks

logger = logging.getLogger(__name__)

T = TypeVar("T")
CONFIG_TTL = 60.0
JOB_LIST_TTL = 5.0  # the orphan check's listing may be this old
LATE_LISTING_WAIT = 10.0  # the longest a supervisor waits for a listing on its way
IDLE_WAIT = 1.0  # a listing thread with nobody to watch for checks again this often
# Supervisors acting on one cluster at once; the others wait blocked, off the interpreter's
# lock. A worker's hundred threads all runnable at once starved its ZooKeeper connection's
# thread until sessions expired. Half the connection pool: a cycle never waits for a connection.
TURNS_PER_CLUSTER = MAX_CONNECTIONS // 2


@dataclass
class Watch:
    job_id: str
    interval: float  # the job's poll interval: the listing is refreshed at least this often
    wake: Callable[[], None]


class ClusterStates:
    """The states of every job of one cluster, from one `GET /jobs` per poll interval.

    `GET /jobs` is answered by the dispatcher, not from the execution-graph cache, so it is as
    fresh as `GET /jobs/<id>/status`. A supervisor asks `listed()` for its attempt; a job the
    listing does not show (gone, or submitted after the listing was asked for), or a listing
    older than the caller accepts with none on its way, is asked for on its own.

    A listing that is merely late (asked for, not answered yet: a loaded cluster or worker) is
    waited for. Were each supervisor to ask for its job instead, a hundred requests would join
    the queue the listing waits in, every listing would come later still, and more supervisors
    would ask: a worker starting a hundred jobs against a busy cluster never caught up.
    """

    def __init__(self, client: FlinkClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._watches: dict[str, Watch] = {}  # by flinksched job name
        self._states: dict[str, str] = {}  # Flink job id -> state, of the newest listing
        self._by_name: dict[str, dict[str, str]] | None = None  # the listing by name prefix
        self._body = b""  # the newest listing as Flink sent it (most listings repeat it)
        self._requested = float("-inf")  # monotonic time the newest listing was asked for
        self._fetching = float("-inf")  # when the listing on its way was asked for (-inf: none)
        self._failing = False  # the last listing failed: callers ask for themselves
        self._landed = threading.Condition(self._lock)  # a listing arrived, failed, or a close
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"states-{client.rest_url}")
        self._thread.start()

    def watch(self, name: str, job_id: str, interval: float, wake: Callable[[], None]) -> None:
        """Wake `wake` when the listing shows `job_id` in a new state."""
        with self._lock:
            known = self._watches.get(name)
            self._watches[name] = Watch(job_id, interval, wake)
        if known is None or known.interval > interval:
            self._changed.set()  # a shorter interval: do not sleep out the longer one

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._watches.pop(name, None)
            self._landed.notify_all()  # a stopped supervisor waits for no listing

    def listed(self, name: str, job_id: str, max_age: float,
               since: float = float("-inf")) -> str | None:
        """The job's state in a listing asked for after `since` (monotonic; the caller's last
        submission) and at most `max_age` seconds ago, or, when only a listing on its way can
        be that fresh, in that one once it arrives. None when there is no such listing, it
        lacks the job, or listings fail: the caller asks Flink for the job itself then.

        A listing thread merely late to ask again (a loaded worker: its pause overran) is
        told to ask now, and its listing waited for, as one on its way is."""
        with self._lock:
            deadline = time.monotonic() + LATE_LISTING_WAIT
            awaited = float("inf")
            while True:
                now = time.monotonic()
                if self._requested >= since and (now - self._requested <= max_age
                                                  or self._requested >= awaited):
                    return self._states.get(job_id)
                if (self._failing or now >= deadline or self._stop.is_set()
                        or name not in self._watches):
                    return None
                if self._fetching >= since:
                    awaited = min(awaited, self._fetching)
                elif self._requested < since:
                    return None  # nothing listed since the submission: the caller asks
                elif awaited == float("inf"):
                    awaited = now  # the next listing the thread asks for from now on
                    self._changed.set()
                self._landed.wait(deadline - now)

    def listed_attempts(self, prefix: str, max_age: float = JOB_LIST_TTL,
                        since: float = float("-inf")) -> dict[str, str]:
        """Flink job id -> state of every listed job whose id starts with `prefix` (one
        flinksched job's attempts), from a listing at most `max_age` old and asked for after
        `since` (the caller's last submission: an older listing may show the attempt that
        submission replaced as still running). The listing is grouped once per listing, not
        searched once per job."""
        with self._lock:
            fresh = (self._requested >= since
                     and time.monotonic() - self._requested <= max_age)
        if not fresh:
            self._fetch()
        with self._lock:
            if self._by_name is None:
                grouped: dict[str, dict[str, str]] = {}
                for job_id, state in self._states.items():
                    grouped.setdefault(job_id[:NAME_PREFIX_LENGTH].lower(), {})[job_id] = state
                self._by_name = grouped
            return dict(self._by_name.get(prefix, {}))

    def _fetch(self) -> None:
        requested = time.monotonic()
        with self._lock:
            self._fetching = max(self._fetching, requested)
        try:
            body = self.client.job_listing()
            with self._lock:
                known_body, known_states = self._body, self._states
            states = known_states if body == known_body else {
                str(job.get("id")): str(job.get("status"))
                for job in self.client.parse_job_listing(body)}
        except BaseException:
            with self._lock:
                self._landed_or_failed(requested, failed=True)
            raise
        with self._lock:
            self._landed_or_failed(requested, failed=False)
            if requested < self._requested:
                return  # a newer listing landed meanwhile
            self._requested = requested
            if body == self._body:  # as it was: the states of this very listing are in place
                return
            previous, self._states, self._body, self._by_name = self._states, states, body, None
            woken = [w.wake for w in self._watches.values()
                     if states.get(w.job_id) != previous.get(w.job_id)]
        for wake in woken:
            wake()

    def _landed_or_failed(self, requested: float, *, failed: bool) -> None:
        """Under the lock: the listing asked for at `requested` is no longer on its way."""
        if self._fetching == requested:
            self._fetching = float("-inf")
        self._failing = failed
        self._landed.notify_all()

    def _wake_all(self) -> None:
        with self._lock:
            woken = [w.wake for w in self._watches.values()]
        for wake in woken:
            wake()

    def _interval(self) -> float | None:
        with self._lock:
            return min((w.interval for w in self._watches.values()), default=None)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            interval = self._interval()
            if interval is None:
                self._changed.wait(IDLE_WAIT)
                self._changed.clear()
                continue
            started = time.monotonic()
            try:
                self._fetch()
                if failing:
                    logger.info("job listing of %s answers again", self.client.rest_url)
                failing = False
            except FlinkschedError as exc:
                # The supervisors ask on their own meanwhile and report the outage themselves.
                if not failing:
                    logger.info("job listing of %s failed: %s", self.client.rest_url, exc)
                    self._wake_all()
                failing = True
            except Exception:
                logger.exception("job listing of %s failed", self.client.rest_url)
                failing = True
            self._changed.wait(max(0.0, started + interval - time.monotonic()))
            self._changed.clear()

    def close(self) -> None:
        self._stop.set()
        self._changed.set()
        with self._lock:
            self._landed.notify_all()


class FlinkClients:
    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[ClusterAccess, FlinkClient] = {}
        self._states: dict[str, ClusterStates] = {}
        self._turns: dict[str, threading.Semaphore] = {}
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._fetching = KeyedLocks()

    def get(self, access: ClusterAccess | str) -> FlinkClient:
        """The client of one cluster (its URL, CA bundle and credentials)."""
        if isinstance(access, str):
            access = ClusterAccess(access.rstrip("/"))
        with self._lock:
            client = self._clients.get(access)
            if client is None:
                client = FlinkClient(access.rest_url, self.timeout, access)
                self._clients[access] = client
            return client

    def drop(self, rest_url: str) -> None:
        """Forget a cluster that is gone for good (a job's own, torn down): its client, its
        listing and what was cached of it."""
        url = rest_url.rstrip("/")
        with self._lock:
            for access in [a for a in self._clients if a.rest_url == url]:
                self._clients.pop(access).close()
            states = self._states.pop(url, None)
            self._turns.pop(url, None)
            for key in [k for k in self._cache if k[1] == url]:
                del self._cache[key]
        if states is not None:
            states.close()

    def cluster_config(self, client: FlinkClient) -> dict[str, str]:
        """GET /jobmanager/config, cached: it changes only when the cluster is reconfigured."""
        return self._cached("config", client, CONFIG_TTL, client.jobmanager_config)

    def flink_version(self, client: FlinkClient) -> FlinkVersion | None:
        """GET /config's version, cached as the configuration is."""
        return self._cached("version", client, CONFIG_TTL, client.flink_version)

    def states(self, client: FlinkClient) -> ClusterStates:
        """The cluster's job listing, shared by the worker's supervisors (started on first use)."""
        with self._lock:
            states = self._states.get(client.rest_url)
            if states is None:
                states = self._states[client.rest_url] = ClusterStates(client)
            return states

    def turn(self, client: FlinkClient) -> threading.Semaphore:
        """Held by a supervisor while it acts on the cluster: at most TURNS_PER_CLUSTER at
        once per cluster, so a slow or unreachable cluster holds back only its own jobs."""
        with self._lock:
            turns = self._turns.get(client.rest_url)
            if turns is None:
                turns = self._turns[client.rest_url] = threading.Semaphore(TURNS_PER_CLUSTER)
            return turns

    def _cached(self, kind: str, client: FlinkClient, ttl: float, fetch: Callable[[], T]) -> T:
        key = (kind, client.rest_url)
        with self._fetching(key):  # one request however many supervisors ask at once
            with self._lock:
                cached = self._cache.get(key)
            if cached and time.monotonic() - cached[0] < ttl:
                value: T = cached[1]
                return value
            value = fetch()
            with self._lock:
                self._cache[key] = (time.monotonic(), value)
            return value

    def close(self) -> None:
        with self._lock:
            for states in self._states.values():
                states.close()
            self._states.clear()
            for client in self._clients.values():
                client.close()
            self._clients.clear()
