"""The master and the worker run without the dev stack: its apt-get, downloads and local
process management are not even imported (the import contracts check the static graph)."""

from __future__ import annotations

import subprocess
import sys


def test_master_and_worker_do_not_import_the_dev_stack() -> None:
    probe = ("import sys\n"
             "from click.testing import CliRunner\n"
             "from scheduler.cli.main import cli\n"
             "import scheduler.master.process, worker.process\n"
             "for command in ('master', 'worker'):\n"
             "    assert CliRunner().invoke(cli, [command, '--help']).exit_code == 0\n"
             "print(sorted(m for m in sys.modules if 'devstack' in m or 'cli_dev' in m))\n")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True, timeout=60)
    assert found.stdout.strip() == "[]", found.stdout


def test_the_dev_commands_are_still_there_when_asked_for() -> None:
    from click.testing import CliRunner

    from scheduler.cli.main import cli

    result = CliRunner().invoke(cli, ["dev", "--help"])
    assert result.exit_code == 0 and "up" in result.output
