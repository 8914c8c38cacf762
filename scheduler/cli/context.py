"""What every `flinksched` command shares: connection settings, exit codes, who is acting."""

from __future__ import annotations

import getpass
import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING

import click

from common.errors import FlinkschedError
from common.settings import ZkSettings

if TYPE_CHECKING:
    from common.store.zookeeper import Store


class Exit(IntEnum):
    """Every exit code of `flinksched` (docs/cli.md)."""

    OK = 0
    PROBLEMS = 1  # the command ran and found problems (validation errors, a failed savepoint)
    UNREACHABLE = 2  # ZooKeeper or the stack could not be reached or set up
    NOT_FOUND = 3  # the named job does not exist


class Context:
    def __init__(self, settings: ZkSettings) -> None:
        self.settings = settings

    def connect(self, timeout: float = 4.0, quiet: bool = True) -> Store:
        """A store, or one line on stderr and exit 2 within 5 s: never a traceback.

        Operator commands silence kazoo's own retry warnings; the master and worker keep them.
        """
        from common.store.connect import connect  # the ZooKeeper client, when it is needed

        if quiet:
            logging.getLogger("kazoo").setLevel(logging.CRITICAL)
        try:
            return connect(self.settings, timeout)
        except FlinkschedError as exc:
            click.echo(f"flinksched: {exc}", err=True)
            sys.exit(Exit.UNREACHABLE)

    @contextmanager
    def store(self) -> Iterator[Store]:
        from common.store.connect import close

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
        sys.exit(Exit.NOT_FOUND)


def yaml_dump(value: object) -> None:
    """`-o yaml` output (the YAML library is loaded only for it)."""
    from ruamel.yaml import YAML

    YAML(typ="safe", pure=True).dump(value, sys.stdout)
