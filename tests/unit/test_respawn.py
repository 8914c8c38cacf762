"""The dev stack's session TaskManager runs under a supervisor that starts it again when it
exits by itself (a job's fatal error in it), waits longer while it keeps exiting at once,
and stops it with itself when the stack is stopped."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from common.processes import group_alive
from scheduler.devstack import respawn
from scheduler.devstack.services import Service, running_pid, start, stop
from scheduler.devstack.stack import DevStack, StackConfig
from tests.waiting import wait_until

# Exits with 3 on its first start (the file is not there yet), then runs until stopped.
SERVER = """
import pathlib, sys, time
starts = pathlib.Path(sys.argv[1])
starts.write_text(starts.read_text() + "started\\n" if starts.exists() else "started\\n")
if starts.read_text().count("started") == 1:
    sys.exit(3)
time.sleep(600)
"""


def test_the_first_delay_is_short_and_a_crash_loop_backs_off_to_a_ceiling() -> None:
    assert respawn.restart_delay(None, lived=2.0) == respawn.FIRST_DELAY
    delays = [respawn.FIRST_DELAY]
    for _ in range(8):
        delays.append(respawn.restart_delay(delays[-1], lived=2.0))
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays[-1] == respawn.LONGEST_DELAY
    assert respawn.restart_delay(respawn.LONGEST_DELAY, lived=respawn.HEALTHY_RUN) == 1.0


def test_a_server_that_exits_is_started_again_and_stopping_ends_both(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    service = Service("server", [sys.executable, "-m", "scheduler.devstack.respawn", "--name",
                                 "server", "--", sys.executable, "-c", SERVER, str(starts)],
                      {}, tmp_path)
    pid = start(service)
    try:
        wait_until(lambda: starts.exists() and starts.read_text().count("started") == 2, 20,
                   "the server started a second time")
        wait_until(lambda: len(group_alive(pid)) == 2, 10, "the supervisor and its server")
        log = service.log_file.read_text()
        assert re.search(r"respawn\[server\]: server exited with code 3 after \d+ s; "
                         r"starting it again in 1 s", log), log
    finally:
        assert stop(service)
    assert running_pid(service) is None and group_alive(pid) == []
    assert starts.read_text().count("started") == 2, "started again after it was stopped"


def test_the_session_taskmanager_runs_under_the_supervisor(tmp_path: Path) -> None:
    taskmanager = DevStack(StackConfig(state_dir=tmp_path)).flink_service("taskmanager")
    assert taskmanager.argv[1:3] == ["-m", "scheduler.devstack.respawn"]
    script = taskmanager.argv[taskmanager.argv.index("--") + 1]
    assert script.endswith("bin/taskmanager.sh")
    assert "taskmanager.memory.jvm-metaspace.size=1024m" in taskmanager.argv
