"""What workers saw of each Flink cluster: the Flink version its REST API reports.

A worker supervising jobs on a cluster asks it for its version (GET /config, at most once a
minute) and writes what it saw to `clusters/<name>` when that differs from what it last
wrote; `flinksched describe` shows it, with what the version lacks. The version drives no
decision: every call flinksched makes works alike on Flink 1.20 and 2.x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.errors import StoreError
from common.flink.versions import FlinkVersion
from common.store.records import decode, encode, number

REPORT_INTERVAL = 10.0  # seconds between a worker's reports; the version is read once a minute


@dataclass(frozen=True)
class ClusterSeen:
    cluster: str  # the FlinkCluster's name
    flink_version: str  # as the cluster's REST API spelled it
    rest_url: str
    seen_at: float  # seconds since the epoch
    seen_by: str  # the worker that wrote it

    @property
    def version(self) -> FlinkVersion | None:
        return FlinkVersion.parse(self.flink_version)

    def to_bytes(self) -> bytes:
        return encode({"flinkVersion": self.flink_version, "restUrl": self.rest_url,
                       "seenAt": self.seen_at, "seenBy": self.seen_by})


def parse_cluster_seen(cluster: str, data: bytes) -> ClusterSeen:
    """The node's content, checked: a StoreError names what is wrong with it."""
    what = f"what workers saw of cluster {cluster}"
    raw: dict[str, Any] = decode(data, what)
    texts = {}
    for key in ("flinkVersion", "restUrl", "seenBy"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            raise StoreError(f"{what}: {key} {value!r} is not a non-empty string")
        texts[key] = value
    return ClusterSeen(cluster, texts["flinkVersion"], texts["restUrl"],
                       number(raw, "seenAt", what), texts["seenBy"])


def version_notes(version: FlinkVersion | None) -> list[str]:
    """What flinksched cannot do, or has not been shown to do, on this version: said, not
    left to fail quietly."""
    if version is None:
        return ["the cluster's version is not one flinksched can read"]
    notes = []
    if not version.supported:
        notes.append(f"Flink {version} is not a version flinksched supports (1.20 and 2.x); "
                     "it is driven as those are")
    if not version.has_status_listener:
        notes.append(f"no status listener: Flink {version.line} has no job status listeners, "
                     "so failures are noticed by polling, within the job's pollInterval")
    return notes
