"""What the portal's pages show, as pure functions of what was read: the fleet filtered,
sorted and paged; a job's *why*, its restart timeline, its restore points, what changed in
its spec, and its links. No I/O here: `scheduler.portal.reading` reads, these decide what
the reading means, in milliseconds under test.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from common.durations import format_duration
from common.errors import StoreError
from common.flink.jobids import attempt_of, is_job_id
from common.spec.deployments import Deployment
from common.store.records import RUNNING_PHASES, Checkpoint, JobRecord, JobStatus, Phase
from common.store.supervision import Supervision, shown
from common.telemetry.fleet import PHASE_COLOR, checkpoint_age, full_reason
from worker.decide.policy import backoff_delay, recent_restarts

if TYPE_CHECKING:
    from scheduler.portal.reading import JobData

PER_PAGE = 100  # rows of the fleet page: 5,000 jobs are paged server-side, never sent at once
MAX_PER_PAGE = 500


def phase_class(phase: str) -> str:
    """The style sheet's class for a phase: named after its terminal colour."""
    return f"phase-{PHASE_COLOR.get(phase, 'white')}"


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- the fleet ----------------------------------------------------------------------------------
SORTS = ("name", "phase", "attempt", "restarts", "uptime", "checkpoint", "cluster", "worker",
         "generation")


@dataclass(frozen=True)
class FleetQuery:
    """The fleet page's view, all of it in the URL: a link pasted into an incident chat opens
    the same filter, sort and page."""

    name: str = ""  # a part of the job's name
    phase: str = ""
    labels: tuple[tuple[str, str], ...] = ()  # K=V, all of them
    cluster: str = ""
    sort: str = "name"
    descending: bool = False
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, str] | Any) -> tuple[FleetQuery, list[str]]:
        """The query of a request's parameters, and what in them was not understood (said on
        the page, never a failed page)."""
        problems: list[str] = []
        labels = []
        for text in (params.get("label") or "").split(","):
            text = text.strip()
            if not text:
                continue
            key, equals, value = text.partition("=")
            if equals and key:
                labels.append((key.strip(), value.strip()))
            else:
                problems.append(f"label {text!r} is not K=V: ignored")
        sort = params.get("sort") or "name"
        descending = sort.startswith("-")
        sort = sort.lstrip("-")
        if sort not in SORTS:
            problems.append(f"sort {sort!r} is not one of {', '.join(SORTS)}: sorted by name")
            sort, descending = "name", False
        page = _positive(params.get("page"), 1, "page", problems)
        per_page = min(_positive(params.get("per_page"), PER_PAGE, "per_page", problems),
                       MAX_PER_PAGE)
        return cls(name=(params.get("name") or "").strip(), phase=params.get("phase") or "",
                   labels=tuple(labels), cluster=params.get("cluster") or "", sort=sort,
                   descending=descending, page=page, per_page=per_page), problems

    def params(self, **changes: Any) -> dict[str, str]:
        """The URL parameters of this query (with `changes`), only those not at their default."""
        query = replace(self, **changes)
        out = {"name": query.name, "phase": query.phase, "cluster": query.cluster,
               "label": ",".join(f"{k}={v}" for k, v in query.labels),
               "sort": ("-" if query.descending else "") + query.sort
               if (query.sort, query.descending) != ("name", False) else "",
               "page": str(query.page) if query.page != 1 else "",
               "per_page": str(query.per_page) if query.per_page != PER_PAGE else ""}
        return {k: v for k, v in out.items() if v}

    def url(self, **changes: Any) -> str:
        params = self.params(**changes)
        return "/" + (f"?{urlencode(params)}" if params else "")

    def sort_url(self, column: str) -> str:
        """The same view sorted by `column`; the column it is sorted by already turns around."""
        descending = not self.descending if column == self.sort else False
        return self.url(sort=column, descending=descending, page=1)

    def matches(self, row: Mapping[str, Any]) -> bool:
        return ((not self.name or self.name.lower() in row["name"].lower())
                and (not self.phase or row["phase"].lower() == self.phase.lower())
                and (not self.cluster or row["cluster"] == self.cluster)
                and all(row["labels"].get(k) == v for k, v in self.labels))


def _positive(text: str | None, default: int, what: str, problems: list[str]) -> int:
    if not text:
        return default
    if text.isdigit() and int(text) > 0:
        return int(text)
    problems.append(f"{what} {text!r} is not a positive number: {default} shown")
    return default


def _sort_key(sort: str, now: float) -> Any:
    def uptime(row: Mapping[str, Any]) -> float:
        since = row.get("since") or 0
        return now - since if since and row["phase"] in RUNNING_PHASES else -1.0

    def checkpoint(row: Mapping[str, Any]) -> float:
        last = row.get("lastCheckpoint")
        return now - last["timestamp"] / 1000 if last else float("inf")

    keys = {"uptime": uptime, "checkpoint": checkpoint,
            "restarts": lambda row: row["restarts"],
            "attempt": lambda row: row["attempt"],
            "generation": lambda row: row["generation"]}
    if sort in keys:
        return keys[sort]
    return lambda row: str(row.get(sort) or "")


@dataclass(frozen=True)
class FleetRow:
    """One job's cells on the fleet page."""

    name: str
    phase: str
    phase_class: str
    desired: str
    cluster: str
    deployment: str
    flink_version: str
    attempt: int
    uptime: str
    restarts: str
    checkpoint_age: str
    generation: str
    worker: str
    labels: tuple[tuple[str, str], ...]
    reason: str
    held_config: bool  # its config file has a problem: it runs on its last valid spec


@dataclass(frozen=True)
class FleetPage:
    rows: list[FleetRow]
    total: int  # jobs in the fleet
    matched: int  # jobs the filter matches
    counts: list[tuple[str, int, str]]  # (phase, jobs, class) over the whole fleet
    query: FleetQuery
    pages: int
    clusters: list[str]
    phases: list[str]


def fleet_page(rows: list[dict[str, Any]], query: FleetQuery, now: float,
               versions: Mapping[str, str] | None = None) -> FleetPage:
    """The fleet's rows (`common.telemetry.fleet.status_rows`) as `query` asks for them:
    filtered, sorted and one page of them presented. `versions`: each cluster's Flink version
    as the workers report it."""
    versions = versions or {}
    matched = [row for row in rows if query.matches(row)]
    key = _sort_key(query.sort, now)
    # Ties keep name order, whichever way the column is sorted.
    matched.sort(key=lambda row: row["name"])
    matched.sort(key=key, reverse=query.descending)
    pages = max(1, -(-len(matched) // query.per_page))
    page = min(query.page, pages)
    shown = matched[(page - 1) * query.per_page:page * query.per_page]
    counts = Counter(row["phase"] for row in rows)
    return FleetPage(
        rows=[_fleet_row(row, now, versions) for row in shown], total=len(rows),
        matched=len(matched),
        counts=[(phase, n, phase_class(phase)) for phase, n in sorted(counts.items())],
        query=replace(query, page=page), pages=pages,
        clusters=sorted({row["cluster"] for row in rows if row["cluster"]}),
        phases=[str(p) for p in Phase])


def _fleet_row(row: dict[str, Any], now: float, versions: Mapping[str, str]) -> FleetRow:
    since = row.get("since") or 0
    phase = row["phase"]
    return FleetRow(
        name=row["name"], phase=phase, phase_class=phase_class(phase),
        desired=row["desiredState"] + (" (override)" if row.get("override") else ""),
        cluster=row["cluster"], deployment="own cluster" if row.get("ownCluster") else "session",
        flink_version=versions.get(row["cluster"], ""),
        attempt=row["attempt"],
        uptime=format_duration(now - since) if since and phase in RUNNING_PHASES else "-",
        restarts=f"{row['restartsLastHour']}/{row['restarts']}",
        checkpoint_age=checkpoint_age(row, now),
        generation=f"{row['observedGeneration']}/{row['generation']}",
        worker=row.get("worker") or "-",
        labels=tuple(sorted(row["labels"].items())),
        reason=full_reason(row), held_config=bool(row.get("configError")))


# -- one job ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """One attempt on the restart timeline."""

    number: int
    started: float  # when the worker claimed it (seconds since the epoch)
    kind: str  # first, failure, lost, upgrade, resume, requested, rollback, ...
    cause: str  # why it started
    restored_from: str  # the restore point's path; "" for empty state
    restored_label: str  # "chk-7 of attempt 2", "savepoint sp-1", "empty state"
    chain_break: bool  # started without state although an earlier attempt had run
    ended: float | None = None  # when the next attempt was claimed; None: the current one
    ended_how: str = ""  # what ended it: the next start's kind and cause
    noticed_by: str = ""  # how its end was noticed: push or poll ("" when not a failure)

    @property
    def duration(self) -> str:
        return format_duration(self.ended - self.started) if self.ended else ""


def restore_label(path: str, name: str, savepoints: Iterable[Checkpoint] = ()) -> str:
    """Which attempt's state a restore point is: its checkpoint directory is the attempt's
    Flink job id, a savepoint is looked up among those flinksched took."""
    if not path:
        return "empty state"
    parts = path.rstrip("/").split("/")
    for known in savepoints:
        if known.path.rstrip("/") == path.rstrip("/"):
            return f"savepoint {known.label}"
    for index, part in enumerate(parts):
        if is_job_id(part):
            attempt = attempt_of(name, part)
            tail = parts[index + 1] if index + 1 < len(parts) else ""
            if attempt is not None:
                return f"{tail or 'checkpoint'} of attempt {attempt}"
    return "savepoint" if "savepoint" in path else "checkpoint"


def timeline(name: str, events: list[dict[str, Any]], status: JobStatus) -> list[Attempt]:
    """Attempts as the worker's start events tell them (the job keeps its newest events, so
    the oldest attempts may be gone), newest last; each ended by the next one's start."""
    starts = [event for event in events if "attempt" in event and "start" in event]
    attempts: list[Attempt] = []
    for index, event in enumerate(starts):
        restored = str(event.get("restoredFrom") or "")
        kind = str(event["start"])
        attempts.append(Attempt(
            number=int(event["attempt"]), started=float(event.get("claimedAt") or event["ts"]),
            kind=kind, cause=str(event.get("cause") or event.get("message") or ""),
            restored_from=restored,
            restored_label=restore_label(restored, name, status.savepoints),
            chain_break=not restored and (kind != "first" or index > 0)))
    for index, attempt in enumerate(attempts[:-1]):
        following = starts[index + 1]
        attempts[index] = replace(
            attempt, ended=float(following.get("claimedAt") or following["ts"]),
            ended_how=f"{following['start']}: {following.get('cause') or ''}".rstrip(": "),
            noticed_by=str(following.get("noticedBy") or ""))
    return attempts


def backoff_line(record: JobRecord, status: JobStatus, now: float) -> str:
    """Where the job stands against its restart policy: "restart 3 of 10 within 600s, next
    in 40s" while it backs off, the loop's count in a crash loop, "" while it runs."""
    policy = record.model.restartPolicy
    recent = recent_restarts(status.restart_times, now, policy.window)
    if status.phase == Phase.CRASH_LOOP:
        return (f"{len(recent)} restarts within {policy.window:g}s reached maxRestarts "
                f"{policy.maxRestarts}: held until a new generation, a restart or a resume")
    if status.phase not in (Phase.RECOVERING, Phase.RESTARTING) or not recent:
        return f"{len(recent)} of {policy.maxRestarts} restarts used within {policy.window:g}s"
    delay = backoff_delay(len(recent), policy.backoff.initial, policy.backoff.max)
    due = recent[-1] + delay - now
    nxt = f", next in {format_duration(due)}" if due > 0 else ", next now"
    return f"restart {len(recent) + 1} of {policy.maxRestarts} within {policy.window:g}s{nxt}"


def changed_fields(before: Any, after: Any, path: str = "") -> list[tuple[str, str, str]]:
    """(field, before, after) for each leaf that differs between two spec documents."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[tuple[str, str, str]] = []
        for key in sorted(set(before) | set(after), key=str):
            here = f"{path}.{key}" if path else str(key)
            found.extend(changed_fields(before.get(key), after.get(key), here))
        return found
    if before == after:
        return []
    return [(path, _shown(before), _shown(after))]


def _shown(value: Any) -> str:
    return "(absent)" if value is None else str(value)


def expand_link(pattern: str, job: str, cluster: str, attempt: int) -> str:
    """An installation's URL pattern with `$job`, `$cluster` and `$attempt` filled in (each
    quoted for a URL); an unknown `$name` stays as it is."""
    values = {"job": quote(job, safe=""), "cluster": quote(cluster, safe=""),
              "attempt": str(attempt)}
    return string.Template(pattern).safe_substitute(values)


@dataclass(frozen=True)
class Link:
    label: str
    url: str


def job_links(record: JobRecord, status: JobStatus, patterns: Mapping[str, str]) -> list[Link]:
    """The attempt's Flink web UI (its own cluster's, on a cluster of its own), then the
    installation's links (metrics, logs) for the job."""
    links = []
    base = status.cluster_url or record.rest_url
    if base and status.flink_job_id:
        links.append(Link(f"Flink UI of attempt {status.attempt}",
                          f"{base.rstrip('/')}/#/job/running/{status.flink_job_id}/overview"))
    cluster = str(record.cluster.get("metadata", {}).get("name", ""))
    for label, pattern in patterns.items():
        links.append(Link(label, expand_link(pattern, record.name, cluster, status.attempt)))
    return links


@dataclass(frozen=True)
class RestorePoint:
    label: str
    kind: str
    path: str
    age: str
    at: str
    origin: str  # which attempt's state it is


def restore_points(name: str, status: JobStatus, now: float) -> list[RestorePoint]:
    """The newest checkpoint and the savepoints flinksched took, newest first."""
    points = [*status.savepoints]
    if status.last_checkpoint and status.last_checkpoint not in points:
        points.append(status.last_checkpoint)
    points.sort(key=lambda p: p.timestamp, reverse=True)
    return [RestorePoint(p.label, p.kind, p.path, format_duration(now - p.timestamp / 1000),
                         when(p.timestamp / 1000), restore_label(p.path, name))
            for p in points]


@dataclass(frozen=True)
class Why:
    """Why the job is where it is, in the words of its status."""

    phase: str
    phase_class: str
    reason: str
    supervision: str  # "" while its writer owns it; else why the status is not current
    last_failure: str
    backoff: str
    hold: str  # an operator's override, and who set it
    config_error: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobPage:
    name: str
    why: Why
    desired: str
    cluster: str
    deployment: str
    flink_version: str
    attempt: int
    flink_job_id: str
    worker: str
    generation: int
    observed_generation: int
    source: str
    commit: str
    restored_from: str
    timeline: list[Attempt]
    restore_points: list[RestorePoint]
    rejected: list[tuple[str, str, str]]  # (path, when, why)
    events: list[tuple[str, str, str]]  # (when, source, message), newest first
    spec_yaml: str
    stable_generation: int | None
    changes: list[tuple[str, str, str]]  # from the stable generation's spec to this one's
    links: list[Link]
    command: str


def why(data: JobData, now: float) -> Why:
    record, status = data.record, data.status
    seen = shown(status, data.owner, None, data.writer_alive, 0.0)
    supervision = "" if seen.supervision is Supervision.CURRENT else (
        f"the status says {status.phase}" + (f" ({status.reason})" if status.reason else "")
        + ", but it is not current: its writer does not own the job")
    hold = ""
    if data.override:
        override = data.override
        hold = (f"{override.get('state')} by {override.get('by') or 'unknown'} at "
                f"{when(float(override.get('at', 0)))}"
                + (f": {override['reason']}" if override.get("reason") else ""))
    notes = []
    if not status.checkpoints_durable:
        notes.append("checkpoints are not durable: Flink keeps them only in the JobManager's "
                     "memory (no execution.checkpointing.dir); a restart can restore only from "
                     "a savepoint")
    if record.removed:
        notes.append(f"its config disappeared at {when(record.removed_at)}: stopped with a "
                     "savepoint, its metadata deleted after the grace period")
    if status.rollback is not None:
        notes.append(f"rolled back from generation {status.rollback.from_generation} at "
                     f"{when(status.rollback.at)} ({status.rollback.trigger}): "
                     f"{status.rollback.cause}")
    try:
        backoff = backoff_line(record, status, now)
    except StoreError as exc:  # a spec that no longer validates: said, not a failed page
        backoff, notes = "", [*notes, str(exc)]
    return Why(phase=seen.phase, phase_class=phase_class(seen.phase), reason=seen.reason,
               supervision=supervision, last_failure=status.last_failure, backoff=backoff,
               hold=hold, config_error=data.config_error, notes=notes)


def job_page(data: JobData, now: float, patterns: Mapping[str, str],
             spec_yaml: str) -> JobPage:
    """Everything a job's page shows, from one reading of the job."""
    record, status, stable = data.record, data.status, data.stable
    desired = record.desired_state
    if data.override and data.override.get("state"):
        desired = f"{data.override['state']} (override)"
    changes: list[tuple[str, str, str]] = []
    if stable is not None and stable.generation != record.generation:
        changes = changed_fields({"cluster": stable.cluster.get("spec"), **stable.spec},
                                 {"cluster": record.cluster.get("spec"), **record.spec})
    return JobPage(
        name=record.name, why=why(data, now), desired=desired,
        cluster=str(record.cluster.get("metadata", {}).get("name", "")),
        deployment=("a cluster of its own per attempt" if record.deployment is
                    Deployment.APPLICATION else "session cluster"),
        flink_version=data.version or data.version_note or "not reported yet",
        attempt=status.attempt, flink_job_id=status.flink_job_id,
        worker=data.owner or "-", generation=record.generation,
        observed_generation=status.observed_generation, source=record.source,
        commit=record.commit, restored_from=status.restored_from,
        timeline=list(reversed(timeline(record.name, data.events, status))),
        restore_points=restore_points(record.name, status, now),
        rejected=[(r.path, when(r.at), r.reason) for r in reversed(status.rejected_restores)],
        events=[(when(float(e["ts"])), str(e.get("source", "")), str(e.get("message", "")))
                for e in reversed(data.events)],
        spec_yaml=spec_yaml, stable_generation=stable.generation if stable else None,
        changes=changes, links=job_links(record, status, patterns),
        command=f"flinksched describe {record.name}")
