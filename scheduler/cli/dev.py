"""`flinksched dev up|down|status`: the local stack a newcomer runs with `make demo`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console

from common.errors import FlinkschedError
from common.flink.jobstate import JobState
from common.settings import ZkSettings
from common.store.connect import close, connect
from common.store.records import RUNNING_PHASES, Phase
from common.telemetry.fleet import status_rows
from scheduler.cli.context import Exit
from scheduler.cli.statusview import render_table
from scheduler.devstack.stack import DevStack, StackConfig

console = Console(stderr=True)
WAITS_FOR_A_PERSON = (Phase.SUBMIT_FAILED, Phase.CRASH_LOOP, Phase.NO_RESTORE_POINT,
                      Phase.RESTORE_INCOMPATIBLE, Phase.ROLLBACK_FAILED, Phase.SUSPENDED,
                      Phase.FINISHED, Phase.REMOVED)
REPEATED_FAILURES = 2  # restarts after which a job backing off is failing, not starting


def _stack(state_dir: Path, config_dir: Path, workers: int, zk_port: int, rest_port: int,
           rpc_port: int, metrics_port: int, s3_port: int, progress: bool = True,
           prometheus_port: int | None = None, state_on_s3: bool = False) -> DevStack:
    config = StackConfig(state_dir=state_dir, config_dir=config_dir.resolve(), workers=workers,
                         zk_port=zk_port, rest_port=rest_port, rpc_port=rpc_port,
                         master_metrics_port=metrics_port, worker_metrics_port=metrics_port + 1,
                         prometheus=prometheus_port is not None,
                         prometheus_port=prometheus_port or 9090, s3_port=s3_port,
                         state_on_s3=state_on_s3 and s3_port > 0)
    return DevStack(config, progress=lambda message: console.log(message) if progress else None)


def _options(func: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=Path(".flinksched-dev"), show_default=True,
                     help="Where pids, logs, ZooKeeper data and checkpoints live."),
        click.option("--config-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=Path("configs"), show_default=True),
        click.option("--workers", type=int, default=2, show_default=True,
                     help="Worker processes (32 jobs each: together they run every job in "
                          "the config directory, and either takes the other's jobs)."),
        click.option("--zk-port", type=int, default=2181, show_default=True),
        click.option("--rest-port", type=int, default=8081, show_default=True),
        click.option("--rpc-port", type=int, default=6123, show_default=True,
                     help="Flink JobManager RPC port."),
        click.option("--metrics-port", type=int, default=9250, show_default=True,
                     help="Master /metrics port; workers use the ports after it."),
        click.option("--s3-port", type=int, default=8333, show_default=True,
                     help="The S3 server's (SeaweedFS) port; 0: no S3 server."),
    ]):
        func = option(func)
    return func


def _confirmed_running(stack: DevStack, row: dict[str, Any]) -> bool:
    """Owned by a live worker and RUNNING in Flink itself: not a status left from a past run."""
    if row["phase"] not in RUNNING_PHASES or not row["worker"]:
        return False
    # A job on a cluster of its own is asked there.
    rest_url = row["clusterUrl"] if row.get("ownCluster") else stack.config.rest_url
    if not rest_url:
        return False
    try:
        answer = httpx.get(f"{rest_url}/jobs/{row['flinkJobId']}", timeout=2)
        return answer.status_code == 200 and (
            JobState.parse(str(answer.json().get("state", ""))) is JobState.RUNNING)
    except (httpx.HTTPError, ValueError):
        return False


def _settled(stack: DevStack, row: dict[str, Any]) -> bool:
    """Waiting longer will not change this job: it runs, or it waits for a person (held, or
    failing again and again: between its retries it backs off, longer each time)."""
    failing = row["phase"] == Phase.RECOVERING and row.get("restarts", 0) >= REPEATED_FAILURES
    return row["phase"] in WAITS_FOR_A_PERSON or failing or _confirmed_running(stack, row)


def _not_running(rows: list[dict[str, Any]]) -> list[str]:
    """One line per job that is not RUNNING, with its whole reason (the table cuts it)."""
    lines = []
    for row in rows:
        if row["phase"] == Phase.RUNNING:
            continue
        reason = str(row.get("reason") or "no reason recorded yet")
        if row.get("configError"):
            reason += f"; config invalid: {row['configError']}"
        lines.append(f"{row['name']} is {row['phase']}: {reason}")
    return lines


@click.group()
def dev() -> None:
    """The local stack: ZooKeeper, a Flink session cluster, a master and workers."""


@dev.command()
@_options
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until every configured job is RUNNING.")
@click.option("--timeout", type=float, default=240.0, show_default=True)
@click.option("--prometheus", "with_prometheus", is_flag=True,
              help="Also run Prometheus, scraping the master and workers with the alert rules.")
@click.option("--prometheus-port", type=int, default=9090, show_default=True)
@click.option("--state-on", type=click.Choice(["s3", "disk"]), default="s3", show_default=True,
              help="Where the session cluster keeps checkpoints and savepoints: the stack's S3 "
                   "bucket, or local disk under the state directory.")
def up(state_dir: Path, config_dir: Path, workers: int, zk_port: int, rest_port: int,
       rpc_port: int, metrics_port: int, s3_port: int, wait: bool, timeout: float,
       with_prometheus: bool, prometheus_port: int, state_on: str) -> None:
    """Start the stack (again: only what is not running yet).

    \b
    Example:
      flinksched dev up && flinksched status
    """
    stack = _stack(state_dir, config_dir, workers, zk_port, rest_port, rpc_port, metrics_port,
                   s3_port, prometheus_port=prometheus_port if with_prometheus else None,
                   state_on_s3=state_on == "s3")
    try:
        with console.status("starting the local stack"):
            stack.up()
    except FlinkschedError as exc:
        click.echo(f"flinksched dev up: {exc}", err=True)  # whole, unwrapped, no markup
        sys.exit(Exit.UNREACHABLE)
    settings = ZkSettings(hosts=stack.config.zk_hosts)
    store = connect(settings)
    gone: list[str] = []
    try:
        rows = status_rows(store)
        if wait:
            with console.status("waiting for the configured jobs to reach RUNNING"):
                deadline = time.monotonic() + timeout
                # The rows shown are the ones judged: a job retried with backoff alternates
                # between SubmitFailed and Submitting, and the table shows what settled it.
                while not (rows and all(_settled(stack, row) for row in rows)):
                    gone = stack.exited_control()
                    if gone:
                        break
                    if time.monotonic() > deadline:
                        console.print("[yellow]not every job is RUNNING yet; see below[/]")
                        break
                    time.sleep(0.5)  # polling the user's view, not synchronizing a test
                    rows = status_rows(store)
    finally:
        close(store)
    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(f"Flink UI        {stack.config.rest_url}")
    for row in rows:
        if row.get("ownCluster") and row.get("clusterUrl"):
            out.print(f"Flink UI        {row['clusterUrl']} ({row['name']}'s own cluster)")
    out.print(f"ZooKeeper       {stack.config.zk_hosts}")
    s3 = stack.config.s3()
    if s3 is not None:
        kept = (f"checkpoints and savepoints in {s3.uri(stack.config.cluster_name)}"
                if stack.config.state_on_s3 else "state on local disk")
        out.print(f"S3 (SeaweedFS)  {s3.endpoint} ({kept})")
    out.print(f"portal          http://127.0.0.1:{stack.config.master_metrics_port}/")
    out.print(f"master metrics  http://127.0.0.1:{stack.config.master_metrics_port}/metrics")
    for index in range(workers):
        port = stack.config.worker_metrics_port + index
        out.print(f"worker metrics  http://127.0.0.1:{port}/metrics")
    if with_prometheus:
        out.print(f"Prometheus      http://127.0.0.1:{prometheus_port}/alerts")
    out.print(f"logs            {stack.state_dir / 'logs'}")
    out.print()
    click.echo(render_table(rows, color=sys.stdout.isatty()) if rows else "no jobs configured")
    for line in _not_running(rows):
        click.echo(line)
    if gone:
        click.echo("flinksched dev up: " + "; ".join(gone), err=True)
        sys.exit(Exit.UNREACHABLE)


@dev.command()
@_options
def down(state_dir: Path, config_dir: Path, workers: int, zk_port: int, rest_port: int,
         rpc_port: int, metrics_port: int, s3_port: int) -> None:
    """Stop exactly what `dev up` started."""
    stack = _stack(state_dir, config_dir, workers, zk_port, rest_port, rpc_port, metrics_port,
                   s3_port)
    stopped = stack.down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dev.command(name="status")
@_options
def dev_status(state_dir: Path, config_dir: Path, workers: int, zk_port: int,
               rest_port: int, rpc_port: int, metrics_port: int, s3_port: int) -> None:
    """Which processes of the local stack are running."""
    stack = _stack(state_dir, config_dir, workers, zk_port, rest_port, rpc_port, metrics_port,
                   s3_port, progress=False)
    for name, pid in stack.status().items():
        click.echo(f"{name:12} {'running, pid ' + str(pid) if pid else 'stopped'}")


@dev.command(name="build-listener")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True)
def build_listener(out_dir: Path) -> None:
    """Compile the status listener (flink-listener/) against the fetched Flink; print the
    jar's path. Copy it into a Flink image's lib/ (docs/push.md)."""
    try:
        click.echo(DevStack.build_listener(out_dir.resolve()))
    except FlinkschedError as exc:
        raise click.ClickException(str(exc)) from exc
