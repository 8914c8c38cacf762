"""The leader's view for Prometheus: per-job and pool series, from what the leading master
reads of every job's status in ZooKeeper (a dead worker cannot hide a dead job).

`LEADER_VIEW` holds what it last read and is empty on a standby, so only one master exports
them and a deleted job's series end. Per-job series (`common.telemetry.jobseries`) carry
`job_name` and `cluster` (`job` is Prometheus' own target label).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from common.store.clusterseen import ClusterSeen
from common.store.pushed import PushHealth, Watching
from common.telemetry.jobseries import JobSample, JobSeries


@dataclass(frozen=True)
class ClusterSample:
    """How the leader last found one cluster watched (its status listener's heartbeat), and
    the Flink version a worker last saw it run (None: none reported, or a node that could not
    be read)."""

    name: str
    push: PushHealth
    seen: ClusterSeen | None = None


@dataclass(frozen=True)
class PoolSample:
    workers: int = 0
    workers_wanted: int = 0
    jobs_unassigned: int = 0
    jobs_unsupervised: int = 0
    config_errors: int = 0
    removal_blocked: bool = False
    last_sync: float = 0.0
    clusters: tuple[ClusterSample, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Rendering:
    """The per-job series of one export pass: as text, and gzip-compressed up to a flush
    point, so that a compressed scrape only compresses what it adds (`finish`)."""

    text: bytes
    compressed: bytes
    compressor: Any  # zlib's Compress object after `compressed`; copied, never used itself
    at: float  # monotonic time it was encoded

    @classmethod
    def of(cls, text: bytes) -> Rendering:
        compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip member
        compressed = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return cls(text, compressed, compressor, time.monotonic())

    def finish(self, more: bytes) -> bytes:
        """One gzip member holding these series, then `more`."""
        tail = self.compressor.copy()
        end: bytes = tail.compress(more) + tail.flush()
        return self.compressed + end


class LeaderView:
    """A collector exporting what the leader last read; nothing while this master stands by.

    The pool's gauges and the clusters are a few series, collected on each scrape. The
    per-job series are encoded by the export pass (`publish`) and served as bytes
    (`serve`), with their age as a gauge: a scrape never waits for them, and when the
    export pass cannot read ZooKeeper the scrape still answers and says how old they are.
    """

    def __init__(self) -> None:
        self._sample: PoolSample | None = None
        self._series = JobSeries()
        self._rendered: Rendering | None = None
        self._lock = threading.Lock()
        self._encoding = threading.Lock()  # one export pass at a time uses the encoder

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._sample = replace(self._sample or PoolSample(), **fields)

    def publish(self, jobs: Iterable[JobSample], clusters: tuple[ClusterSample, ...],
                still_leading: Callable[[], bool]) -> None:
        """Encode the jobs' series for the following scrapes. Nothing is kept when
        leadership ended meanwhile (`still_leading`, asked last)."""
        with self._encoding:  # not under `_lock`: the sync's updates never wait for this
            rendering = Rendering.of(self._series.render(jobs))
        with self._lock:
            if not still_leading():
                self._sample = self._rendered = None
                return
            self._rendered = rendering
            self._sample = replace(self._sample or PoolSample(), clusters=clusters)

    def serve(self, live: bytes, compressed: bool) -> bytes:
        """The per-job series as the last export pass encoded them (none while standing
        by), then `live`; as one gzip member when `compressed`."""
        rendering = self._rendered
        if not compressed:
            return live if rendering is None else rendering.text + live
        return gzip.compress(live, 1) if rendering is None else rendering.finish(live)

    def clear(self) -> None:
        with self._lock:
            self._sample = self._rendered = None
            self._series = JobSeries()

    def describe(self) -> list[Metric]:
        return []  # collected on every scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        sample, rendered = self._sample, self._rendered
        if rendered is not None:
            yield GaugeMetricFamily(
                "flinksched_job_series_age_seconds",
                "Seconds since the export pass encoded the per-job series this scrape "
                "serves (it runs every 5 s; more means it cannot read ZooKeeper)",
                value=time.monotonic() - rendered.at)
        if sample is None:
            return
        for name, help_text, value in (
            ("workers", "Live registered workers", sample.workers),
            ("workers_wanted", "Workers the pool should have: jobs plus warm spares",
             sample.workers_wanted),
            ("jobs_unassigned", "Jobs with no live worker assigned", sample.jobs_unassigned),
            ("jobs_unsupervised", "Jobs no worker has owned for longer than a session timeout",
             sample.jobs_unsupervised),
            ("config_errors", "Problems found in the config directory", sample.config_errors),
            ("config_removal_blocked", "1 while the removal guard withholds removing jobs",
             int(sample.removal_blocked)),
            ("config_last_sync_timestamp_seconds", "When the config directory was last synced",
             sample.last_sync),
        ):
            yield GaugeMetricFamily(f"flinksched_{name}", help_text, value=value)
        yield from self._clusters(sample.clusters)

    @staticmethod
    def _clusters(clusters: tuple[ClusterSample, ...]) -> Iterator[Metric]:
        labels = ["cluster"]
        up = GaugeMetricFamily("flinksched_cluster_push_up", "1 while the cluster's status "
                               "listener pushes (its heartbeat is fresh); 0: polling alone "
                               "notices failures", labels=labels)
        age = GaugeMetricFamily("flinksched_cluster_push_heartbeat_age_seconds",
                                "Seconds since the status listener's last heartbeat",
                                labels=labels)
        dropped = GaugeMetricFamily("flinksched_cluster_push_dropped",
                                    "Events the listener dropped (queue full) since its "
                                    "JobManager started", labels=labels)
        info = GaugeMetricFamily("flinksched_cluster_flink_info", "1 for the Flink version "
                                 "the cluster's REST API reported to a worker (absent until "
                                 "one did)", labels=["cluster", "flink_version"])
        for cluster in clusters:
            up.add_metric([cluster.name], 1 if cluster.push.watching is Watching.PUSH else 0)
            if cluster.push.heartbeat is not None:
                age.add_metric([cluster.name], cluster.push.age or 0.0)
                dropped.add_metric([cluster.name], cluster.push.heartbeat.dropped)
            if cluster.seen is not None:
                info.add_metric([cluster.name, cluster.seen.flink_version], 1)
        yield from (up, age, dropped, info)

LEADER_VIEW = LeaderView()
REGISTRY.register(LEADER_VIEW)


def exposition(compressed: bool = False) -> bytes:
    """What a scrape of /metrics gets: the leader's per-job series as its last export pass
    encoded them, then this process's own metrics, encoded now (a few dozen series). With
    `compressed` (the scraper accepts gzip, as Prometheus does), a gzip body whose per-job
    part the export pass compressed too: a scrape compresses only its own few series."""
    return LEADER_VIEW.serve(generate_latest(REGISTRY), compressed)
