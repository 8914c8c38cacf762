"""Flink REST clients shared by a worker's supervisors, one per cluster, with the answers
every supervisor needs (the cluster's config, its job list) cached for all of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from common.flink import FlinkClient

T = TypeVar("T")
CONFIG_TTL = 60.0
JOB_LIST_TTL = 5.0  # one GET /jobs per cluster and worker every 5 s, not one per job


class FlinkClients:
    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[str, FlinkClient] = {}
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, rest_url: str) -> FlinkClient:
        with self._lock:
            client = self._clients.get(rest_url)
            if client is None:
                client = self._clients[rest_url] = FlinkClient(rest_url, self.timeout)
            return client

    def cluster_config(self, client: FlinkClient) -> dict[str, str]:
        """GET /jobmanager/config, cached: it changes only when the cluster is reconfigured."""
        return self._cached("config", client, CONFIG_TTL, client.jobmanager_config)

    def job_list(self, client: FlinkClient) -> list[dict[str, Any]]:
        """GET /jobs, shared by the worker's supervisors (it lists every job of the cluster)."""
        return self._cached("jobs", client, JOB_LIST_TTL, client.jobs)

    def _cached(self, kind: str, client: FlinkClient, ttl: float, fetch: Callable[[], T]) -> T:
        key = (kind, client.rest_url)
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
            for client in self._clients.values():
                client.close()
            self._clients.clear()
