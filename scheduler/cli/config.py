"""Config commands: validate (no ZooKeeper needed), plan (against ZooKeeper), allow-removal."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scheduler.cli.context import Context, Exit, actor

if TYPE_CHECKING:
    from common.store.records import Rollback
    from scheduler.master.changes import Plan

# The spec model (pydantic) and the YAML loaders are imported by these commands only:
# every other command, the worker included, starts faster and smaller without them.
PATHS = click.Path(exists=True, path_type=Path)
SIGNS = {"added": "+", "changed": "~", "removed": "-", "restored": "+", "invalid": "!",
         "kept": "!", "removing": "-", "unchanged": "="}


@click.command()
@click.argument("paths", nargs=-1, required=True, type=PATHS)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def validate(paths: tuple[Path, ...], output: str) -> None:
    """Check job-config files: exit 0 when all is well, 1 with every problem otherwise.

    Needs no ZooKeeper: a config repository's own CI runs it before a merge.

    \b
    Examples:
      flinksched validate configs/
      flinksched validate jobs/clickstream.yaml -o json
    """
    from common.spec.configdir import load_config_paths

    config = load_config_paths(list(paths))
    if output == "json":
        click.echo(json.dumps({
            "valid": not config.errors,
            "files": len(config.files),
            "jobs": sorted(config.jobs),
            "clusters": sorted(config.clusters),
            "errors": [e.to_json() for e in config.errors],
        }, indent=2))
    else:
        for error in config.errors:
            click.echo(str(error))
        summary = (f"{len(config.files)} file(s), {len(config.jobs)} job(s), "
                   f"{len(config.clusters)} cluster(s)")
        if config.errors:
            click.echo(f"{len(config.errors)} problem(s) in {summary}", err=True)
        else:
            click.echo(f"valid: {summary}")
    if config.errors:
        sys.exit(Exit.PROBLEMS)


@click.command()
@click.argument("path", type=PATHS)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--all", "show_all", is_flag=True, help="List unchanged jobs too.")
@click.option("--max-removal-share", type=float, default=0.5, show_default=True,
              help="The master's removal guard, to show whether removals would be withheld.")
@click.pass_obj
def plan(obj: Context, path: Path, output: str, show_all: bool,
         max_removal_share: float) -> None:
    """What syncing PATH would change in ZooKeeper, and the action each change causes.

    Exit 0 when the config is valid, 1 when it has problems (the plan then shows the
    jobs that keep their last valid spec).

    \b
    Examples:
      flinksched plan configs/
      flinksched plan configs/ -o json | jq '.changes[] | select(.kind != "unchanged")'
    """
    from common.spec.configdir import load_config_paths
    from scheduler.master.changes import CHANGED, RemovalGuard, build_plan

    config = load_config_paths([path])
    with obj.store() as store:
        current = store.jobs()
        allowed = store.removal_allowed() is not None
        result = build_plan(config, current, guard=RemovalGuard(max_removal_share, allowed))
        changed = [c.name for c in result.changes if c.kind == CHANGED]
        rolled = {name: status.rollback for name, status in store.statuses(changed).items()
                  if status.rollback is not None}
    if output == "json":
        click.echo(json.dumps({**result.to_json(),
                               "rolledBack": {n: r.to_json() for n, r in rolled.items()},
                               "errors": [e.to_json() for e in config.errors]}, indent=2))
    else:
        click.echo(render_plan(result, show_all, rolled))
        for error in config.errors:
            click.echo(f"error: {error}", err=True)
    if config.errors:
        sys.exit(Exit.PROBLEMS)


def render_plan(result: Plan, show_all: bool = False,
                rolled: Mapping[str, Rollback] | None = None) -> str:
    """The plan for people; `rolled`: the changed jobs that run a rolled-back spec."""
    from scheduler.master.changes import ADDED, CHANGED, INVALID, REMOVED, UNCHANGED

    lines = []
    for change in result.changes:
        if change.kind == UNCHANGED and not show_all:
            continue
        generation = f" (generation {change.record.generation})" if (
            change.record is not None and change.kind in (ADDED, CHANGED)) else ""
        lines.append(f"{SIGNS.get(change.kind, '?')} {change.name}: {change.kind}{generation}"
                     + (f"  [{change.source}]" if change.source else ""))
        for field in change.fields:
            lines.append(f"      {field}")
        if change.error:
            lines.append(f"      error: {change.error}")
        lines.append(f"      action: {change.action}")
        rollback = (rolled or {}).get(change.name)
        if rollback is not None:
            lines.append(f"      on top of a rollback: the job runs generation "
                         f"{rollback.to_generation}'s spec (generation "
                         f"{rollback.from_generation} was rolled back, {rollback.trigger}); "
                         "this generation is an upgrade from it")
    if result.removal_blocked:
        lines.append(f"removals withheld: {result.removal_blocked}")
    counts = result.counts()
    lines.append("plan: " + ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in (
        ADDED, CHANGED, REMOVED, UNCHANGED, INVALID) if counts.get(kind) or kind != INVALID))
    return "\n".join(lines)


@click.command("allow-removal")
@click.pass_obj
def allow_removal(obj: Context) -> None:
    """Let the next sync remove jobs that the removal guard withheld.

    The master refuses to remove more than a share of the jobs in one sync (an empty or
    broken checkout looks like a mass deletion). Check `flinksched plan` first.
    """
    with obj.store() as store:
        store.allow_removal(actor())
    click.echo("the next sync may remove jobs whose config is gone")
