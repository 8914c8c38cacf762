"""Flink REST clients shared by a worker's supervisors, one per cluster, with cached config."""

from __future__ import annotations

import threading
import time

from common.flink import FlinkClient

CONFIG_TTL = 60.0


class FlinkClients:
    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[str, FlinkClient] = {}
        self._configs: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def get(self, rest_url: str) -> FlinkClient:
        with self._lock:
            client = self._clients.get(rest_url)
            if client is None:
                client = self._clients[rest_url] = FlinkClient(rest_url, self.timeout)
            return client

    def cluster_config(self, client: FlinkClient) -> dict[str, str]:
        """GET /jobmanager/config, cached: it changes only when the cluster is reconfigured."""
        with self._lock:
            cached = self._configs.get(client.rest_url)
        if cached and time.monotonic() - cached[0] < CONFIG_TTL:
            return cached[1]
        config = client.jobmanager_config()
        with self._lock:
            self._configs[client.rest_url] = (time.monotonic(), config)
        return config

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
