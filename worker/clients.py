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
from common.flink import FlinkClient
from common.flinkaccess import ClusterAccess
from common.keyedlocks import KeyedLocks

logger = logging.getLogger(__name__)

T = TypeVar("T")
CONFIG_TTL = 60.0
JOB_LIST_TTL = 5.0  # the orphan check's listing may be this old
IDLE_WAIT = 1.0  # a listing thread with nobody to watch for checks again this often


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
    older than the caller accepts, is asked for on its own.
    """

    def __init__(self, client: FlinkClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._watches: dict[str, Watch] = {}  # by flinksched job name
        self._states: dict[str, str] = {}  # Flink job id -> state, of the newest listing
        self._listing: list[dict[str, Any]] = []
        self._requested = float("-inf")  # monotonic time the newest listing was asked for
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

    def listed(self, job_id: str, max_age: float, since: float = float("-inf")) -> str | None:
        """The job's state in a listing asked for at most `max_age` seconds ago and after
        `since` (monotonic; the caller's last submission); None when there is no such listing
        or it lacks the job (ask Flink for the job itself then)."""
        with self._lock:
            if self._requested < since or time.monotonic() - self._requested > max_age:
                return None
            return self._states.get(job_id)

    def jobs(self, max_age: float = JOB_LIST_TTL) -> list[dict[str, Any]]:
        """Every job of the cluster (id, status), from a listing at most `max_age` old."""
        with self._lock:
            if time.monotonic() - self._requested <= max_age:
                return list(self._listing)
        return self._fetch()

    def _fetch(self) -> list[dict[str, Any]]:
        requested = time.monotonic()
        listing = self.client.jobs()
        states = {str(job.get("id")): str(job.get("status")) for job in listing}
        with self._lock:
            if requested < self._requested:
                return listing  # a newer listing landed meanwhile
            previous, self._states, self._listing = self._states, states, listing
            self._requested = requested
            woken = [w.wake for w in self._watches.values()
                     if states.get(w.job_id) != previous.get(w.job_id)]
        for wake in woken:
            wake()
        return listing

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


class FlinkClients:
    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[ClusterAccess, FlinkClient] = {}
        self._states: dict[str, ClusterStates] = {}
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

    def cluster_config(self, client: FlinkClient) -> dict[str, str]:
        """GET /jobmanager/config, cached: it changes only when the cluster is reconfigured."""
        return self._cached("config", client, CONFIG_TTL, client.jobmanager_config)

    def states(self, client: FlinkClient) -> ClusterStates:
        """The cluster's job listing, shared by the worker's supervisors (started on first use)."""
        with self._lock:
            states = self._states.get(client.rest_url)
            if states is None:
                states = self._states[client.rest_url] = ClusterStates(client)
            return states

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
