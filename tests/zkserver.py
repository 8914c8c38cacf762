"""A ZooKeeper server of one test or benchmark, whose data directory it may wipe or roll back
(the session's shared server is never touched that way)."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from common.processes import free_port
from common.store.session import serving
from common.store.zookeeper import Store
from scheduler.devstack import zookeeper
from scheduler.devstack.services import Service, start, stop, wait_for


class ZooKeeperServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        config = zookeeper.write_zoo_cfg(directory, self.port)
        self.service = Service("zookeeper", [str(zookeeper.ensure_server_script()),
                                             "start-foreground", str(config)],
                               {"ZOO_LOG_DIR": str(directory / "logs")}, directory)
        self.data = directory / "zookeeper"

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start, and wait until the server serves: an open port alone is not enough (a
        connect to a port nobody listens on yet can even reach itself on loopback)."""
        start(self.service)
        assert wait_for(lambda: serving("127.0.0.1", self.port), 60, interval=0.2), (
            f"ZooKeeper did not serve on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.service, sig=sig)

    def wipe(self) -> float:
        """Kill, empty the data directory, start: when it serves again (monotonic)."""
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.data)
        zookeeper.write_zoo_cfg(self.directory, self.port)  # makes the empty data directory
        self.start()
        return time.monotonic()

    def restore(self, copy: Path) -> None:
        """Kill, replace the data with an older copy of it, start."""
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.data)
        shutil.copytree(copy, self.data)
        self.start()


@contextmanager
def store_on(hosts: str, root: str, start_timeout: float = 10.0,
             **client_options: Any) -> Iterator[Store]:
    """A started client of the caller's own, as a Store under `root`, stopped afterwards."""
    client = KazooClient(hosts=hosts, **client_options)
    client.start(timeout=start_timeout)
    try:
        yield Store(client, root)
    finally:
        client.stop()
        client.close()
