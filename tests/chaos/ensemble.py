"""A three-server ZooKeeper ensemble of real servers (Debian's package), for faults a single
server cannot show: the loss of one member, and the restart of the whole service."""

from __future__ import annotations

import socket
from pathlib import Path

from common.processes import free_port
from scheduler.devstack import zookeeper
from scheduler.devstack.services import Service, kill, running_pid, start, stop, wait_for


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    """A four-letter command's answer ('' when the server does not answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


class Ensemble:
    def __init__(self, state_dir: Path, size: int = 3) -> None:
        script = zookeeper.ensure_server_script()
        self.ports = [free_port() for _ in range(size)]
        peers = [(free_port(), free_port()) for _ in range(size)]
        self.services: list[Service] = []
        for number, port in enumerate(self.ports, start=1):
            directory = state_dir / f"zookeeper-{number}"
            config = zookeeper.write_zoo_cfg(directory, port, number, peers)
            self.services.append(Service(
                f"zookeeper-{number}", [str(script), "start-foreground", str(config)],
                {"ZOO_LOG_DIR": str(directory / "logs")}, directory))

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def serving(self, member: int) -> bool:
        """The member is part of a quorum and serves clients."""
        return "Mode: " in four_letter(self.ports[member], "srvr")

    def start(self, member: int | None = None) -> None:
        for index in self._members(member):
            start(self.services[index])

    def wait_serving(self, timeout: float = 90.0) -> None:
        down = [n for n in range(len(self.ports)) if running_pid(self.services[n]) is not None]
        if not wait_for(lambda: all(self.serving(n) for n in down), timeout, interval=0.2):
            raise AssertionError(f"ZooKeeper ensemble {self.hosts} not serving in {timeout:g}s")

    def stop(self, member: int | None = None) -> None:
        for index in self._members(member):
            stop(self.services[index])

    def kill(self, member: int) -> None:
        kill(self.services[member])

    def _members(self, member: int | None) -> list[int]:
        return list(range(len(self.ports))) if member is None else [member]
