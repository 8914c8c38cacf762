"""Ports chosen for servers lie below the kernel's ephemeral range: a port chosen from within
it was taken, in a loaded run, as the local port of an outgoing connection in the seconds
before the JobManager it was chosen for bound it."""

from __future__ import annotations

import socket

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


def test_a_port_in_use_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
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
