"""Stacks of one Flink version started at once (test processes, `dev up` beside the tests)
fill the cache once: a second process waits for the first's install, then uses it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from scheduler.devstack import pyflink
from scheduler.devstack.filelock import exclusive
from tests.waiting import holds_for


def test_a_pyflink_another_process_is_installing_is_waited_for_not_installed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLINKSCHED_CACHE", str(tmp_path))
    installs: list[str] = []
    monkeypatch.setattr(pyflink, "_install", lambda version, venv: installs.append(version))
    found: list[Path] = []
    with exclusive(tmp_path / ".pyflink-2.3.0.lock"):  # the other process, installing
        waiter = threading.Thread(target=lambda: found.append(pyflink.ensure_pyflink("2.3.0")))
        waiter.start()
        holds_for(lambda: not installs and waiter.is_alive(), 0.5,
                  "the second process waiting, installing nothing")
        venv = tmp_path / "pyflink-2.3.0"
        venv.mkdir()
        (venv / ".installed").write_text("2.3.0")  # the other process's install, done
    waiter.join(10)
    assert installs == [] and found == [pyflink.python_of("2.3.0")]
