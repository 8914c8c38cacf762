"""What every `flinksched` command shares: connection settings, exit codes, who is acting."""

from __future__ import annotations

import getpass
import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from common.errors import FlinkschedError
from common.settings import ZkSettings
from common.store import Store
from common.zkconnect import close, connect

EXIT_OK = 0
EXIT_PROBLEMS = 1  # the command ran and found problems (e.g. validation errors)
EXIT_UNREACHABLE = 2  # ZooKeeper or the stack could not be reached or set up
EXIT_NOT_FOUND = 3  # the named job does not exist


class Context:
    def __init__(self, settings: ZkSettings) -> None:
        self.settings = settings

    def connect(self, timeout: float = 4.0, quiet: bool = True) -> Store:
        """A store, or one line on stderr and exit 2 within 5 s: never a traceback.

        Operator commands silence kazoo's own retry warnings; the master and worker keep them.
        """
        if quiet:
            logging.getLogger("kazoo").setLevel(logging.CRITICAL)
        try:
            return connect(self.settings, timeout)
        except FlinkschedError as exc:
            click.echo(f"flinksched: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = self.connect()
        try:
            yield store
        finally:
            close(store)


def actor() -> str:
    """Who is acting, for the paper trail of operations."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def require_job(store: Store, name: str) -> None:
    if store.job(name) is None:
        click.echo(f"flinksched: no job named {name!r} (see `flinksched status`)", err=True)
        sys.exit(EXIT_NOT_FOUND)
