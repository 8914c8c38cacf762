"""The `flinksched` command line.

Exit codes: 0 success; 1 the command ran and found problems; 2 ZooKeeper or the stack could
not be reached or set up (one line on stderr, no traceback); 3 no such job.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple

import click

from common.errors import StoreError
from common.settings import ZkSettings
from common.telemetry import logsetup
from scheduler.cli.context import Context, Exit

SUMMARY = 60  # characters of a command's summary in `flinksched --help`


class Command(NamedTuple):
    module: str  # where it is defined, imported when it runs
    summary: str  # its short help (a test holds it to the command's docstring)


# Each command is loaded only when it runs: `flinksched --help` imports none, `status` none
# of the master's or the worker's code (and no ZooKeeper client until it connects).
COMMANDS = {
    "allow-removal": Command(
        "scheduler.cli.config", "Let the next sync remove jobs that the removal guard..."),
    "completion": Command("scheduler.cli.ops", "Print the shell completion script."),
    "describe": Command(
        "scheduler.cli.describe", "One job in depth: spec and its source, status,..."),
    "dev": Command(
        "scheduler.cli.dev", "The local stack: ZooKeeper, a Flink session cluster, a..."),
    "events": Command(
        "scheduler.cli.describe", "Recent events of one job, or of all jobs, oldest first."),
    "leader": Command(
        "scheduler.cli.describe", "The leading master and its standbys, in election order."),
    "master": Command(
        "scheduler.cli.processes", "Run a master: leader election, config sync, assignment..."),
    "plan": Command(
        "scheduler.cli.config", "What syncing PATH would change in ZooKeeper, and the..."),
    "restart": Command(
        "scheduler.cli.ops", "Restart a job: a new attempt from its newest checkpoint,..."),
    "resume": Command(
        "scheduler.cli.ops", "Lift a suspension: the job runs again from the savepoint..."),
    "rollback": Command(
        "scheduler.cli.ops", "Roll a job back to its last stable generation, from the..."),
    "savepoint": Command("scheduler.cli.ops", "Take a savepoint of a running job."),
    "status": Command(
        "scheduler.cli.status", "Every job at a glance: phase, attempt, worker, uptime,..."),
    "suspend": Command(
        "scheduler.cli.ops", "Stop a job with a savepoint and keep it stopped until..."),
    "validate": Command(
        "scheduler.cli.config", "Check job-config files: exit 0 when all is well, 1 with..."),
    "worker": Command(
        "scheduler.cli.processes", "Run a worker: own assigned jobs and keep them running in..."),
    "workers": Command(
        "scheduler.cli.describe", "Live workers: host, slots used/total, jobs, version, up..."),
}


class Commands(click.Group):
    """The CLI's commands, each imported from its module when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = COMMANDS.get(cmd_name)
        if found is None:
            return None
        command = getattr(importlib.import_module(found.module), cmd_name.replace("-", "_"))
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.summary) for name, command in COMMANDS.items()])


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--zk", envvar="FLINKSCHED_ZK", default="127.0.0.1:2181", show_default=True,
              help="ZooKeeper hosts (env FLINKSCHED_ZK).")
@click.option("--root", envvar="FLINKSCHED_ROOT", default="/flinksched", show_default=True,
              help="ZooKeeper root path, the chroot of this installation (env FLINKSCHED_ROOT).")
@click.option("--session-timeout", type=float, default=10.0, show_default=True,
              help="ZooKeeper session timeout in seconds.")
@click.option("--zk-auth", envvar="FLINKSCHED_ZK_AUTH", default=None, metavar="USER:PASSWORD",
              help="ZooKeeper digest credentials (env FLINKSCHED_ZK_AUTH; prefer the env).")
@click.option("--zk-read-identity", envvar="FLINKSCHED_ZK_READ_IDENTITY", default=None,
              metavar="USER:PASSWORD",
              help="With --zk-auth: an identity that may read, never write, every node this "
                   "process creates, for the CLI's read commands "
                   "(env FLINKSCHED_ZK_READ_IDENTITY).")
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def cli(ctx: click.Context, zk: str, root: str, session_timeout: float, zk_auth: str | None,
        zk_read_identity: str | None, log_level: str, log_format: str) -> None:
    """Keeps long-running Apache Flink jobs alive.

    \b
    Examples:
      flinksched dev up                     # local ZooKeeper + Flink + master + workers
      flinksched status                     # every job, its phase and checkpoint age
      flinksched master --config-dir configs
    """
    logsetup.configure(log_level, log_format)
    ctx.obj = Context(ZkSettings(hosts=zk, root=root, session_timeout=session_timeout,
                                 auth=zk_auth, read_identity=zk_read_identity))


def main() -> None:
    try:
        cli(prog_name="flinksched")
    except StoreError as exc:  # one line, no traceback (ZooKeeper refused or did not answer)
        click.echo(f"flinksched: {exc}", err=True)
        sys.exit(Exit.UNREACHABLE)
