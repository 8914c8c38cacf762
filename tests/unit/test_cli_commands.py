"""The CLI loads what a command uses, and only that: `--help` none of the commands' modules,
`status` neither the spec's models nor a terminal library. Its summary of each command is
the command's own short help."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from scheduler.cli.main import COMMANDS, SUMMARY, cli


def test_each_summary_is_the_commands_own_short_help() -> None:
    context = click.Context(cli)
    assert list(COMMANDS) == sorted(COMMANDS), "listed in order"
    for name, command in COMMANDS.items():
        loaded = cli.get_command(context, name)
        assert loaded is not None, name
        assert loaded.get_short_help_str(limit=SUMMARY) == command.summary, name


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    shown = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True)
    return set(json.loads(shown.stdout.splitlines()[-1]))


def test_help_loads_no_command() -> None:
    loaded = loaded_after("from click.testing import CliRunner\n"
                          "from scheduler.cli.main import cli\n"
                          "CliRunner().invoke(cli, ['--help'])")
    assert {m for m in loaded if m.startswith("scheduler.cli.")} == {
        "scheduler.cli.main", "scheduler.cli.context"}
    assert not {"kazoo", "pydantic", "rich", "httpx", "prometheus_client"} & loaded


def test_status_loads_neither_the_models_nor_a_terminal_library() -> None:
    loaded = loaded_after("import scheduler.cli.status, common.store.connect")
    assert "kazoo" in loaded
    assert not {"pydantic", "rich", "prometheus_client", "worker", "scheduler.master"} & loaded
