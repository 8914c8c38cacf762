"""Operations with a paper trail: restart, rollback, savepoint, suspend, resume; shell
completion.

Each is written to ZooKeeper (a command node or an override) and recorded as an event with
who and when; the owning worker carries it out.
"""

from __future__ import annotations

import sys
import time

import click
from click.shell_completion import get_completion_class
from rich.console import Console

from common.store import operations
from common.store.records import CommandKind, SavepointResult
from scheduler.cli.context import Context, Exit, actor, require_job


@click.command()
@click.argument("job")
@click.option("--from-empty", is_flag=True,
              help="Start from empty state, discarding every checkpoint. Asks first.")
@click.option("--from", "from_path", default=None, metavar="PATH",
              help="Restore from this checkpoint or savepoint (a URI such as "
                   "file:///ckpt/<job-id>/chk-42 or s3://bucket/savepoint-1) instead of the "
                   "newest one flinksched knows.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def restart(obj: Context, job: str, from_empty: bool, from_path: str | None, yes: bool) -> None:
    """Restart a job: a new attempt from its newest checkpoint, a given one, or empty state.

    \b
    Examples:
      flinksched restart clickstream-sessionizer
      flinksched restart clickstream-sessionizer --from file:///ckpt/6f1e.../chk-41
      flinksched restart clickstream-sessionizer --from-empty --yes
    """
    if from_empty and from_path:
        raise click.UsageError("--from and --from-empty exclude each other")
    if from_path is not None:
        from common.errors import StorageUnavailable
        from worker.restore import rejection

        try:
            problem = rejection(from_path)
        except StorageUnavailable as exc:  # the worker checks again, where the storage is
            click.echo(f"flinksched: not checked from here: {exc}", err=True)
            problem = None
        if problem is not None:
            raise click.BadParameter(problem, param_hint="--from")
    if from_empty and not yes:
        click.confirm(f"Restart {job} from EMPTY state, discarding all of its state?", abort=True)
    who = actor()
    with obj.store() as store:
        require_job(store, job)
        what = operations.request_restart(store, job, who, "cli", from_path or "", from_empty)
    click.echo(f"{job}: {what} requested; the owning worker carries it out")


@click.command()
@click.argument("job")
@click.pass_obj
def rollback(obj: Context, job: str) -> None:
    """Roll a job back to its last stable generation, from the state that generation wrote.

    The job's YAML is not rewritten: the generation rolled back from is not tried again, and
    the next one (a new commit) is an upgrade from the stable spec. The owning worker refuses
    (and says so in the job's events) when there is nothing to roll back to.

    \b
    Examples:
      flinksched rollback clickstream-sessionizer
    """
    who = actor()
    with obj.store() as store:
        require_job(store, job)
        record = store.job(job)
        assert record is not None
        stable = store.stable(job)
        status, _ = store.status(job)
        if stable is None:
            raise click.ClickException(f"{job}: no generation has been stable yet: nothing "
                                       "to roll back to")
        if status.rollback is not None or stable.submit_hash == record.submit_hash:
            raise click.ClickException(
                f"{job}: generation {record.generation} runs the last stable spec "
                f"(generation {stable.generation}) already: nothing to roll back")
        store.add_command(job, CommandKind.ROLLBACK, by=who)
        store.append_event(job, f"cli {who}", f"rollback to generation {stable.generation} "
                                              f"requested by {who}")
    click.echo(f"{job}: rollback to generation {stable.generation} requested; the owning "
               "worker carries it out")


@click.command()
@click.argument("job")
@click.option("--wait", is_flag=True, help="Wait until the savepoint completes.")
@click.option("--timeout", type=float, default=300.0, show_default=True)
@click.pass_obj
def savepoint(obj: Context, job: str, wait: bool, timeout: float) -> None:
    """Take a savepoint of a running job.

    \b
    Examples:
      flinksched savepoint clickstream-sessionizer --wait
    """
    who = actor()
    with obj.store() as store:
        require_job(store, job)
        before = len(store.events(job))
        node = operations.request_savepoint(store, job, who, "cli")
        click.echo(f"{job}: savepoint requested ({node})")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        with Console(stderr=True).status(f"waiting for the savepoint of {job}"):
            while time.monotonic() < deadline:
                for event in store.events(job)[before:]:
                    if event.get("command") == node and "savepointResult" in event:
                        click.echo(f"{job}: {event['message']}")
                        completed = event["savepointResult"] == SavepointResult.COMPLETED
                        sys.exit(Exit.OK if completed else Exit.PROBLEMS)
                time.sleep(0.5)  # polling on behalf of a waiting operator
        click.echo(f"{job}: no savepoint result within {timeout:g}s", err=True)
        sys.exit(Exit.PROBLEMS)


@click.command()
@click.argument("job")
@click.option("--reason", required=True, help="Why, for whoever looks next.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def suspend(obj: Context, job: str, reason: str, yes: bool) -> None:
    """Stop a job with a savepoint and keep it stopped until `resume`, whatever git says.

    \b
    Example:
      flinksched suspend clickstream-sessionizer --reason "Kafka maintenance" --yes
    """
    if not yes:
        click.confirm(f"Suspend {job} (stop it with a savepoint)?", abort=True)
    who = actor()
    with obj.store() as store:
        require_job(store, job)
        operations.suspend(store, job, who, "cli", reason)
    click.echo(f"{job}: suspended by {who}; `flinksched resume {job}` lifts it")


@click.command()
@click.argument("job")
@click.pass_obj
def resume(obj: Context, job: str) -> None:
    """Lift a suspension: the job runs again from the savepoint it stopped with.

    \b
    Example:
      flinksched resume clickstream-sessionizer
    """
    who = actor()
    with obj.store() as store:
        require_job(store, job)
        if not operations.resume(store, job, who, "cli"):
            click.echo(f"{job}: no override to lift (is it suspended in its YAML instead?)")
            sys.exit(Exit.PROBLEMS)
    click.echo(f"{job}: resumed by {who}")


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script.

    \b
    Example:
      eval "$(flinksched completion bash)"
    """
    root = ctx.find_root().command
    completer = get_completion_class(shell)
    assert completer is not None
    click.echo(completer(root, {}, "flinksched", "_FLINKSCHED_COMPLETE").source())
