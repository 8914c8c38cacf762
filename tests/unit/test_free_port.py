"""Ports chosen for servers lie below the kernel's ephemeral range: a port chosen from within
it was taken, in a loaded run, as the local port of an outgoing connection in the seconds
before the JobManager it was chosen for bound it."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from common import processes
from common.processes import free_port


def test_a_chosen_port_is_free_and_below_the_ephemeral_range() -> None:
    low = processes._ephemeral_low()
    if low <= processes.LOWEST_CHOSEN_PORT + 1000:
        pytest.skip("this system tells no ephemeral range to stay below")
    ports = {free_port() for _ in range(50)}
    assert all(processes.LOWEST_CHOSEN_PORT <= port < low for port in ports), ports
    assert len(ports) > 40, "chosen at random, not one after another"
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports.pop()))


def test_a_port_in_use_is_never_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "PORT_CLAIMS", tmp_path / "claims")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        unused = probe.getsockname()[1]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        picks = iter([taken, taken, unused])
        monkeypatch.setattr(processes, "_ephemeral_low", lambda: 65000)
        monkeypatch.setattr(processes._CHOICE, "randrange", lambda low, high: next(picks))
        assert free_port() == unused


def test_a_port_claimed_by_another_process_is_not_chosen_until_the_claim_is_old(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes choosing in the same seconds (a test's stack and another test's worker
    starting an own cluster) never get the same port: the first one's claim stands for
    CLAIM_SECONDS, whether or not its server has bound the port yet."""
    monkeypatch.setattr(processes, "PORT_CLAIMS", tmp_path / "claims")
    with socket.socket() as one, socket.socket() as other:
        one.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        first, second = one.getsockname()[1], other.getsockname()[1]
    picks = iter([first, first, second])
    monkeypatch.setattr(processes, "_ephemeral_low", lambda: 65000)
    monkeypatch.setattr(processes._CHOICE, "randrange", lambda low, high: next(picks))
    assert free_port() == first
    assert free_port() == second, "the port claimed a moment ago was handed out again"
    claim = tmp_path / "claims" / str(first)
    old = time.time() - processes.CLAIM_SECONDS - 1
    os.utime(claim, (old, old))
    assert processes.claim_port(first), "a claim older than the window still held the port"
    assert not processes.claim_port(first)
