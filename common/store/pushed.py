"""What a Flink cluster's status listener pushes into ZooKeeper, checked on the way in.

The listener (flink-listener/, loaded by the JobManager) writes each status change of a job
flinksched runs to `<root>/events/<name prefix>` and its own counters, every heartbeat
interval, to the ephemeral `<root>/listeners/<cluster>`. Both come from outside flinksched:
a value that does not parse, names another job, or a state Flink does not have is rejected
with the reason, and never drives an action. Even a valid event only makes the worker look:
Flink's REST API stays the truth it acts on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from common.errors import StoreError
from common.flink.jobids import is_job_id, name_prefix
from common.flink.jobstate import JobState
from common.store.records import decode, number

MAX_CAUSE = 500
# A listener is silent once its heartbeat is older than this many of its own intervals.
SILENT_AFTER_INTERVALS = 3
HEARTBEAT_SLACK = 2.0  # seconds on top: a busy ZooKeeper, clocks a little apart


@dataclass(frozen=True)
class PushedEvent:
    """One status change of one attempt, as the listener saw it in the JobManager."""

    job_id: str
    previous: JobState
    state: JobState
    at: float  # the JobManager's clock, seconds since the epoch
    cause: str  # first line of the root exception ("" when there is none)
    sequence: int  # the listener's count of events sent; a new JobManager starts again


def parse_event(name: str, data: bytes) -> PushedEvent | None:
    """The pushed event of job `name`; None for the empty node the worker creates. A value
    that is not one of this job's status changes is a StoreError saying what is wrong."""
    if not data:
        return None
    raw = decode(data, f"status event pushed for job {name}")
    job_id = str(raw.get("jobId", "")).lower()
    if not is_job_id(job_id) or not job_id.startswith(name_prefix(name)):
        raise StoreError(f"status event pushed for job {name} names job id {job_id!r}, "
                         f"which is not one of this job's (prefix {name_prefix(name)})")
    state, previous = (JobState.parse(str(raw.get(key, ""))) for key in ("to", "from"))
    if state is JobState.UNKNOWN:
        raise StoreError(f"status event pushed for job {name}: {raw.get('to')!r} is not a "
                         "state Flink reports")
    what = f"status event pushed for job {name}"
    at, sequence = number(raw, "time", what) / 1000.0, number(raw, "sequence", what)
    cause = raw.get("cause", "")
    return PushedEvent(job_id, previous, state, at, str(cause)[:MAX_CAUSE] if cause else "",
                       int(sequence))


class Watching(enum.Enum):
    """How flinksched learns of a cluster's job status changes."""

    PUSH = "push + poll"  # the listener's heartbeat is fresh: failures arrive as they happen
    SILENT = "poll only (listener silent)"  # a listener is registered, its heartbeat is old
    POLL = "poll only"  # no listener: the worker's listing each poll interval


@dataclass(frozen=True)
class Heartbeat:
    """A listener's counters as of its last heartbeat."""

    cluster: str
    interval: float  # seconds between heartbeats
    flink_version: str
    sent: int
    dropped: int  # the queue was full: the JobManager never waits for flinksched
    ignored: int  # jobs flinksched does not run
    failed: int  # events ZooKeeper did not take


def parse_heartbeat(cluster: str, data: bytes) -> Heartbeat:
    what = f"status listener heartbeat of cluster {cluster}"
    raw = decode(data, what)
    counts = {key: int(number(raw, key, what, default=0))
              for key in ("sent", "dropped", "ignored", "failed")}
    interval = number(raw, "interval", what, default=5000, positive=True) / 1000.0
    return Heartbeat(cluster, interval, str(raw.get("flinkVersion", "")), **counts)


@dataclass(frozen=True)
class PushHealth:
    watching: Watching
    age: float | None = None  # seconds since the last heartbeat (None: no listener)
    heartbeat: Heartbeat | None = None
    problem: str = ""  # why a heartbeat node could not be used

    def describe(self) -> str:
        if self.heartbeat is None:
            return self.watching.value + (f" ({self.problem})" if self.problem else "")
        beat = self.heartbeat
        return (f"{self.watching.value} (listener heartbeat {self.age or 0.0:.0f}s ago; "
                f"events sent {beat.sent}, dropped {beat.dropped}, failed {beat.failed})")


def push_health(heartbeat: Heartbeat | None, written: float, now: float,
                problem: str = "") -> PushHealth:
    """How a cluster is watched, from its listener's heartbeat node (None: there is none),
    written at `written` (ZooKeeper's modification time, seconds) as seen at `now`."""
    if heartbeat is None:
        return PushHealth(Watching.POLL, problem=problem)
    age = max(0.0, now - written)
    fresh = age <= SILENT_AFTER_INTERVALS * heartbeat.interval + HEARTBEAT_SLACK
    return PushHealth(Watching.PUSH if fresh else Watching.SILENT, age, heartbeat)


def own_cluster_listener(cluster: str, job: str) -> str:
    """The name the status listener of a job's own cluster heartbeats under: `<cluster>.<job>`
    (a dot is in no FlinkCluster's name, so it never stands for a configured cluster)."""
    return f"{cluster}.{job}"
