"""Saying what this worker sees of its jobs' clusters: each cluster's Flink version, written
to ZooKeeper (`clusters/<name>`, see common/clusterinfo.py) when it differs from what this
worker last wrote there. Runs off the supervisors' and the reconcile loop's paths (a cluster
that does not answer holds up only this)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from common.errors import FlinkschedError, StoreError
from common.store.clusterseen import ClusterSeen
from common.store.zookeeper import Store
from worker.targets import DeploymentTarget

logger = logging.getLogger(__name__)


class ClusterReporter:
    def __init__(self, store: Store, worker_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.worker_id = worker_id
        self.clock = clock
        self._written: dict[str, tuple[str, str]] = {}  # cluster -> (version, REST URL)
        self._lock = threading.Lock()  # one pass at a time (the interval's, or a sooner one)
        self._forget = False

    def forget(self) -> None:
        """Write everything again on the next pass: this worker registered in a new session,
        perhaps with a ZooKeeper that lost or rolled back its data."""
        self._forget = True  # taken by the next pass: never waits for one in progress

    def report(self, clusters: Iterable[tuple[str, DeploymentTarget]]) -> None:
        """One pass over the clusters this worker's jobs run on."""
        with self._lock:
            if self._forget:
                self._forget = False
                self._written.clear()
            self._report(clusters)

    def _report(self, clusters: Iterable[tuple[str, DeploymentTarget]]) -> None:
        done = set()
        for name, target in clusters:
            if not name or name in done:
                continue
            done.add(name)
            try:
                # In a turn, as the supervisors ask: this worker never has more requests in
                # flight on one cluster than its turns (and the shared listing).
                with target.turn():
                    version = target.version()
            except FlinkschedError as exc:
                logger.debug("cluster %s: version not read: %s", name, exc)
                continue
            if version is None:
                continue
            seen = (str(version), target.rest_url)
            if self._written.get(name) == seen:
                continue
            try:
                self.store.put_cluster_seen(ClusterSeen(name, seen[0], seen[1], self.clock(),
                                                        self.worker_id))
            except StoreError as exc:
                logger.info("cluster %s: its version was not recorded: %r", name, exc)
                continue
            if name in self._written:
                logger.info("cluster %s now reports Flink %s (was %s)", name, seen[0],
                            self._written[name][0])
            else:
                logger.info("cluster %s runs Flink %s", name, seen[0])
            self._written[name] = seen
