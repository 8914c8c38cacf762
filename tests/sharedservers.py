"""Servers one pytest run shares among its processes (pytest-xdist workers, or the one
process of a run without them): each is started by whichever process needs it first, under
a file lock, and described in a JSON file beside the lock; every other process finds it
there. The run's main process stops them all when the run ends (`stop_all`), whatever
started them: each is a set of services with pid files (`scheduler.devstack.services`).

A start that failed is remembered, so that the other processes fail at once with its reason
instead of trying again, each for minutes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from scheduler.devstack.services import Service, stop
from scheduler.devstack.stack import DevStack, StackConfig

logger = logging.getLogger(__name__)

# Starts a server in its directory; calls `record(info)` with what stops it before starting
# anything (a start that fails halfway is still stopped), and returns what the tests need.
Record = Callable[[dict[str, Any]], None]
Start = Callable[[Path, Record], dict[str, Any]]


def run_directory(factory: pytest.TempPathFactory) -> Path:
    """The directory every process of this run sees: the main process's base temporary
    directory (an xdist worker's own is inside it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


class SharedServers:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "shared"
        self.directory.mkdir(parents=True, exist_ok=True)

    def provide(self, name: str, start: Start) -> dict[str, Any]:
        """What `start` returned when the run's first process asked for `name`; started now
        if nobody has."""
        state = self.directory / f"{name}.json"
        with FileLock(self.directory / f"{name}.lock"):
            if state.exists():
                found: dict[str, Any] = json.loads(state.read_text())
                if "failed" in found:
                    pytest.fail(f"shared {name} did not start: {found['failed']}")
                return found
            def record(info: dict[str, Any]) -> None:
                state.write_text(json.dumps(info))

            try:
                info = start(self.directory / name, record)
            except BaseException as exc:
                partial = json.loads(state.read_text()) if state.exists() else {}
                record({**partial, "failed": f"{type(exc).__name__}: {exc}"})
                raise
            state.write_text(json.dumps(info))
            return info

    def stop_all(self) -> None:
        """Stop every shared server of the run, the newest first."""
        states = sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime,
                        reverse=True)
        for state in states:
            info = json.loads(state.read_text())
            try:
                if "stack" in info:
                    DevStack(stack_config(info["stack"])).down()
                for service in info.get("services", []):
                    stop(Service(service["name"], service["argv"], {},
                                 Path(service["state_dir"])))
            except Exception:  # stop the others all the same
                logger.exception("shared %s not stopped", state.stem)
            state.unlink()


def stack_fields(config: StackConfig) -> dict[str, Any]:
    """A stack's configuration as JSON, for the processes that find it."""
    fields = dict(config.__dict__)
    for key, value in fields.items():
        if isinstance(value, Path):
            fields[key] = str(value)
    fields["push_settings"] = [list(pair) for pair in config.push_settings]
    return fields


PATHS = ("state_dir", "config_dir", "build_dir")  # StackConfig's fields that are paths


def stack_config(fields: dict[str, Any]) -> StackConfig:
    values: dict[str, Any] = {key: Path(value) if key in PATHS else value
                              for key, value in fields.items()}
    values["push_settings"] = tuple(tuple(pair) for pair in fields.get("push_settings", ()))
    return StackConfig(**values)


def service_fields(service: Service) -> dict[str, Any]:
    return {"name": service.name, "argv": list(service.argv),
            "state_dir": str(service.state_dir)}
