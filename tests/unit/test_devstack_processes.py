"""`flinksched dev up` notices a master or worker that exited (a port taken after it was
checked, a bad flag) and says what it logged last, instead of waiting for jobs nobody runs;
and refuses to start a Flink of another version beside the one still running."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import pytest

from common.errors import DevStackError
from common.store.records import Phase
from scheduler.devstack.services import Service, exited, last_log_line, running_pid, start, stop
from scheduler.devstack.stack import DevStack, StackConfig
from tests.waiting import wait_until

SAID_LAST = "cannot serve on 0.0.0.0:40006: Address already in use"


def test_a_control_process_that_exited_is_reported_with_its_last_line(tmp_path: Path) -> None:
    stack = DevStack(StackConfig(state_dir=tmp_path, workers=1))
    master, worker = stack.control_services()
    # Stand-ins under the same names (their pid and log files): one runs, one exits.
    running = Service(master.name, [sys.executable, "-c", "import time; time.sleep(60)"], {},
                      tmp_path)
    failing = Service(worker.name, [sys.executable, "-c",
                                    f"print('starting'); print({SAID_LAST!r}); exit(1)"], {},
                      tmp_path)
    try:
        start(running)
        failed_pid = start(failing)
        wait_until(lambda: running_pid(failing) is None, 10, "the failing stand-in to exit")
        assert not exited(running) and exited(failing)
        assert last_log_line(failing) == SAID_LAST
        [line] = stack.exited_control()
        assert line.startswith(f"worker-0 exited: {SAID_LAST} (see ")
        assert line.endswith("logs/worker-0.log)")
    finally:
        stop(running)
        stop(failing)
    assert stack.exited_control() == [], "stopped on purpose is not exited"
    assert not Path(f"/proc/{failed_pid}").exists(), "the exited process was reaped, no zombie"


def test_a_running_cluster_of_another_version_is_refused_before_anything_starts(
        tmp_path: Path) -> None:
    (tmp_path / "flink-version").write_text("2.2.1\n")
    asked = DevStack(StackConfig(state_dir=tmp_path, flink_version="1.20.3"))
    same = DevStack(StackConfig(state_dir=tmp_path, flink_version="2.2.1"))
    jobmanager = Service(asked.flink_service("jobmanager").name,
                         [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path)
    start(jobmanager)
    try:
        with pytest.raises(DevStackError, match=r"this stack's Flink 2\.2\.1 cluster is running "
                                                r"and Flink 1\.20\.3 was asked for"):
            asked.refuse_version_switch()
        same.refuse_version_switch()
    finally:
        stop(jobmanager)
    asked.refuse_version_switch()  # stopped: any version may start


def test_dev_up_waits_no_longer_for_a_job_failing_again_and_again() -> None:
    """A job backing off after its second failed start waits for a person, not for time (its
    backoff doubles: `dev up` would wait out a minute or more of it)."""
    from scheduler.cli.dev import _settled

    stack = cast(DevStack, None)  # not asked: neither row is RUNNING
    assert _settled(stack, {"phase": Phase.RECOVERING, "restarts": 2})
    assert not _settled(stack, {"phase": Phase.RECOVERING, "restarts": 0})
