"""`flinksched status`: every job at a glance, fast (it loads neither the spec's models nor a
terminal library unless `--watch` asks for one)."""

from __future__ import annotations

import json
import sys
import time

import click

from common.store.records import PHASES
from common.telemetry.fleet import select, status_rows
from scheduler.cli.context import Context, yaml_dump
from scheduler.cli.statusview import render_table

PHASES_HELP = ", ".join(PHASES)


@click.command()
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json", "yaml"]),
              default="table", show_default=True)
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Only jobs with this label.")
@click.option("--phase", default=None, help=f"Only jobs in this phase ({PHASES_HELP}).")
@click.option("--cluster", default=None, help="Only jobs on this FlinkCluster.")
@click.option("--watch", "-w", is_flag=True, help="Redraw every second until Ctrl-C.")
@click.pass_obj
def status(obj: Context, output: str, labels: tuple[str, ...], phase: str | None,
           cluster: str | None, watch: bool) -> None:
    """Every job at a glance: phase, attempt, worker, uptime, restarts, checkpoint age.

    \b
    Examples:
      flinksched status
      flinksched status --phase CrashLoopBackOff --label team=growth
      flinksched status -o json | jq '.[] | select(.phase != "Running") | .name'
      flinksched status --watch
    """
    for label in labels:
        if "=" not in label:
            raise click.BadParameter(f"{label!r} is not K=V", param_hint="--label")
    with obj.store() as store:
        if watch:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            with Live(console=Console(), auto_refresh=False) as live:
                try:
                    while True:
                        rows = select(status_rows(store), labels, phase, cluster)
                        text = render_table(rows, wide=output == "wide", color=True)
                        live.update(Text.from_ansi(text), refresh=True)
                        time.sleep(1.0)  # the redraw period of an interactive view
                except KeyboardInterrupt:
                    return
        rows = select(status_rows(store), labels, phase, cluster)
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    elif output == "yaml":
        yaml_dump(rows)
    elif not rows:
        click.echo("no jobs")
    else:
        click.echo(render_table(rows, wide=output == "wide", color=sys.stdout.isatty()))
        held = sum(1 for row in rows if row["configError"])
        if held:
            click.echo(f"{held} job(s) kept on their last valid spec: their config has a "
                       "problem (`flinksched validate` on the config repository lists it)",
                       err=True)
