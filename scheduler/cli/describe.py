"""Read-only commands in depth: describe, events, workers, leader."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.durations import format_duration
from common.errors import Unavailable
from common.sizes import human_bytes
from common.spec.deployments import Deployment
from common.store.clusterseen import REPORT_INTERVAL, ClusterSeen, version_notes
from common.store.pushed import own_cluster_listener
from common.store.records import JobRecord, JobStatus, Phase, StableSpec, StoredState
from common.store.supervision import Supervision, shown
from scheduler.cli.context import Context, Exit, require_job, yaml_dump


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 1000)  # piped output never wraps




def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.command()
@click.argument("job")
@click.option("-n", "--events", "event_count", type=int, default=15, show_default=True)
@click.pass_obj
def describe(obj: Context, job: str, event_count: int) -> None:
    """One job in depth: spec and its source, status, checkpoints, savepoints, last failure,
    recent events.

    \b
    Example:
      flinksched describe clickstream-sessionizer
    """
    with obj.store() as store:
        require_job(store, job)
        record = store.job(job)
        assert record is not None
        status, _ = store.status(job)
        stable = store.stable(job)
        owner = store.owner(job)
        alive = store.worker_ids()
        override = store.override(job)
        events = store.events(job)[-event_count:]
        config = store.config_state()
        cluster_name = str(record.cluster.get("metadata", {}).get("name", ""))
        section = CLUSTER_SECTIONS[record.deployment]
        push = store.listener(section.listener(cluster_name, job))
        seen = store.cluster_seen(cluster_name)
    console = _console()
    commit = f" (commit {record.commit[:12]})" if record.commit else ""
    console.print(f"[bold]{job}[/]  generation {record.generation}  from {record.source}{commit}")
    problem = config.get("jobErrors", {}).get(job)
    if problem:
        console.print(f"[red]config error:[/] {escape(str(problem))}; the job keeps "
                      f"generation {record.generation} until the file is fixed")
    if record.removed:
        console.print(f"[magenta]removed:[/] its config disappeared at {_when(record.removed_at)};"
                      " stopped with a savepoint, metadata deleted after the grace period")
    if override:
        console.print(f"[yellow]override:[/] {override.get('state')} by {override.get('by')} "
                      f"at {_when(float(override.get('at', 0)))}: {override.get('reason', '')}")
    shown_as = shown(status, owner[0] if owner else None, None, status.worker in alive, 0.0)
    if shown_as.supervision is Supervision.CURRENT:
        console.print(f"phase        {status.phase}" +
                      (f" ({escape(status.reason)})" if status.reason else ""))
    else:
        colour = "red" if shown_as.phase == Phase.UNSUPERVISED else "yellow"
        console.print(f"phase        [{colour}]{shown_as.phase}[/] ({escape(shown_as.reason)})")
        console.print(f"reported     {status.phase}" + (f" ({escape(status.reason)})"
                                                        if status.reason else "") +
                      ", not current: its writer does not own the job")
    console.print(f"flink job    {status.flink_job_id or '-'}  attempt {status.attempt}  "
                  f"worker {owner[0] if owner else '-'}")
    section.show(console, cluster_name, record, status, push.describe(), seen)
    console.print(f"generation   observed {status.observed_generation} / "
                  f"desired {record.generation}")
    _print_rollback(console, record, status, stable)
    console.print(f"restarts     {status.restarts} (Flink's own, this attempt: "
                  f"{status.flink_restarts})")
    console.print(f"restored     {status.restored_from or 'empty state'}")
    checkpoint = status.last_checkpoint
    if checkpoint:
        age = format_duration(time.time() - checkpoint.timestamp / 1000)
        console.print(f"checkpoint   {checkpoint.label} {checkpoint.path} ({age} ago)")
    if not status.checkpoints_durable:
        console.print("[yellow]checkpoints  not durable:[/] Flink keeps them only in the "
                      "JobManager's memory (no execution.checkpointing.dir); a restart can "
                      "restore only from a savepoint")
    for rejected in status.rejected_restores:
        console.print(f"[red]rejected[/]     {escape(rejected.path)} at {_when(rejected.at)}: "
                      f"{escape(rejected.reason)}")
    for savepoint in status.savepoints:
        console.print(f"savepoint    {savepoint.path} at {_when(savepoint.timestamp / 1000)}")
    if status.stored is not None:
        _print_stored(console, status.stored, record.model.checkpoints.retainAttempts)
    if status.last_failure:
        console.print(f"last failure {status.last_failure}")
    console.print("[bold]spec[/]")
    yaml_dump({"cluster": record.cluster, "spec": record.spec})
    console.print("[bold]events[/]")
    for event in events:
        console.print(f"  {_when(float(event['ts']))}  {event['source']}: {event['message']}")


def _print_rollback(console: Console, record: JobRecord, status: JobStatus,
                    stable: StableSpec | None) -> None:
    """The last stable generation, and the one rolled back from (while it is)."""
    if stable is None:
        policy = "on" if record.model.rolls_back else "off (spec.rollback.enabled)"
        console.print(f"stable       none yet; rollback of a broken upgrade {policy}")
        return
    commit = f", commit {stable.commit[:12]}" if stable.commit else ""
    console.print(f"stable       generation {stable.generation} (proven by attempt "
                  f"{stable.attempt} at {_when(stable.at)}{commit})")
    rollback = status.rollback
    if rollback is not None:
        colour = "red" if status.phase == Phase.ROLLBACK_FAILED else "yellow"
        console.print(f"[{colour}]rolled back[/]  from generation {rollback.from_generation} at "
                      f"{_when(rollback.at)} ({rollback.trigger}): {escape(rollback.cause)}; "
                      f"generation {rollback.from_generation} is not tried again, the next "
                      "one is an upgrade from the stable spec")
    elif record.generation != stable.generation and status.stable_attempt != status.attempt \
            and record.model.rolls_back:
        console.print(f"on trial     generation {record.generation}: rolled back to "
                      f"{stable.generation} unless stable within "
                      f"{record.model.rollback.readinessTimeout:g}s of its upgrade")
    if status.rollbacks:
        console.print(f"rollbacks    {status.rollbacks}")


def _print_stored(console: Console, stored: StoredState, retain: int) -> None:
    """What the job keeps in storage, and what retention does with it."""
    age = format_duration(time.time() - stored.at)
    attempts = f"{stored.attempts} attempt{'s' if stored.attempts != 1 else ''}"
    console.print(f"storage      {human_bytes(stored.bytes)} in {stored.objects} objects: "
                  f"checkpoints of {attempts} under {escape(stored.directory)}, "
                  f"{stored.savepoints} savepoints (measured {age} ago)")
    if stored.held:
        console.print(f"[yellow]retention    off:[/] {escape(stored.held)}")
    else:
        console.print(f"retention    the current attempt's checkpoints and those of {retain} "
                      f"earlier attempt{'s' if retain != 1 else ''} "
                      "(spec.checkpoints.retainAttempts)")


def _print_session(console: Console, cluster_name: str, record: JobRecord, status: JobStatus,
                   watched: str, seen: ClusterSeen | Unavailable | None) -> None:
    """A job on a session cluster: where it is, how it is watched, its Flink version."""
    console.print(f"cluster      {cluster_name or '-'} ({record.rest_url}), watched by "
                  f"{escape(watched)}")
    _print_flink_version(console, seen)


def _print_own_cluster(console: Console, cluster_name: str, record: JobRecord,
                       status: JobStatus, watched: str,
                       seen: ClusterSeen | Unavailable | None) -> None:
    """A job on clusters of its own: which template, where the current one's UI is."""
    console.print(f"cluster      {cluster_name}: a cluster of the job's own for each attempt "
                  f"(application mode), watched by {escape(watched)}")
    if status.cluster_url:
        console.print(f"own cluster  {escape(status.cluster_url)} (REST API and web UI of "
                      f"attempt {status.attempt})")
    else:
        console.print("own cluster  none running")
    line = (record.cluster.get("spec") or {}).get("flinkVersion")
    console.print(f"flink        {escape(str(line))}, as the cluster asks" if line else
                  "flink        the version of the worker's Flink distribution (or the image)")


def _print_flink_version(console: Console, seen: ClusterSeen | Unavailable | None) -> None:
    if seen is None:
        console.print("flink        version not reported yet (a worker running a job on the "
                      f"cluster reports it within {REPORT_INTERVAL:g} s of reading it from the "
                      "cluster's GET /config)")
        return
    if isinstance(seen, Unavailable):
        console.print(f"flink        version unknown: {escape(seen.why)}")
        return
    console.print(f"flink        {escape(seen.flink_version)} (its REST API, to worker "
                  f"{escape(seen.seen_by)} at {_when(seen.seen_at)})")
    for note in version_notes(seen.version):
        console.print(f"             [yellow]{escape(note)}[/]")



@dataclass(frozen=True)
class ClusterSection:
    """How `describe` shows a job's cluster, for each kind of FlinkCluster."""

    listener: Callable[[str, str], str]  # the name its status listener heartbeats under
    show: Callable[[Console, str, JobRecord, JobStatus, str,
                    ClusterSeen | Unavailable | None], None]


CLUSTER_SECTIONS = {
    Deployment.SESSION: ClusterSection(lambda cluster, job: cluster, _print_session),
    # A job's own cluster's listener heartbeats under a name of its own.
    Deployment.APPLICATION: ClusterSection(own_cluster_listener, _print_own_cluster),
}

@click.command()
@click.argument("job", required=False)
@click.option("-n", "--limit", type=int, default=30, show_default=True)
@click.pass_obj
def events(obj: Context, job: str | None, limit: int) -> None:
    """Recent events of one job, or of all jobs, oldest first.

    \b
    Examples:
      flinksched events clickstream-sessionizer
      flinksched events -n 100
    """
    with obj.store() as store:
        if job:
            require_job(store, job)
        names = [job] if job else store.job_names()
        found: list[dict[str, Any]] = []
        for name in names:
            found.extend({**event, "job": name} for event in store.events(name))
    for event in sorted(found, key=lambda e: float(e["ts"]))[-limit:]:
        click.echo(f"{_when(float(event['ts']))}  {event['job']}  {event['source']}: "
                   f"{event['message']}")


@click.command()
@click.pass_obj
def workers(obj: Context) -> None:
    """Live workers: host, slots used/total, jobs, version, up since.

    \b
    Example:
      flinksched workers
    """
    with obj.store() as store:
        found = store.workers()
        assigned = store.assignments()
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("WORKER", "HOST", "PID", "SLOTS", "JOBS", "VERSION", "UP SINCE"):
        table.add_column(column)
    for worker_id, info in found.items():
        jobs = sorted(assigned.get(worker_id, ()))
        table.add_row(worker_id, info.host, str(info.pid), f"{len(jobs)}/{info.slots}",
                      ", ".join(jobs) or "-", info.version, _when(info.started))
    _console().print(table if found else "no workers")


@click.command()
@click.pass_obj
def leader(obj: Context) -> None:
    """The leading master and its standbys, in election order.

    \b
    Example:
      flinksched leader
    """
    with obj.store() as store:
        contenders = store.contenders()
    if not contenders:
        click.echo("no master is running")
        sys.exit(Exit.PROBLEMS)
    for index, (_, master_id) in enumerate(contenders):
        click.echo(f"{master_id}  {'leader' if index == 0 else 'standby'}")
