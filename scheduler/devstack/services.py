"""Background processes of the dev stack: started in their own session, found by pid file.

A pid file records the pid and the process start time, so `down` never signals a process that
merely reused the pid of one it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.processes import group_alive, process_start

# Children this process started, kept so they can be reaped (no zombies, no ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Service:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"


def _start_time(pid: int) -> str | None:
    """The process's start time as a pid file records it (None: gone, or a zombie)."""
    ticks = process_start(pid)
    return None if ticks is None else str(ticks)


def _recorded(service: Service) -> tuple[int, str] | None:
    """The pid and start time in the service's pid file (None: none, or junk)."""
    try:
        pid_text, started = service.pid_file.read_text().split()
        return int(pid_text), started
    except (OSError, ValueError):
        return None


def running_pid(service: Service) -> int | None:
    """The service's pid while the process it started is alive."""
    recorded = _recorded(service)
    if recorded is None:
        return None
    pid, started = recorded
    return pid if _start_time(pid) == started else None


def start(service: Service) -> int:
    """Start the service unless it runs already; returns its pid."""
    pid = running_pid(service)
    if pid is not None:
        return pid
    service.pid_file.parent.mkdir(parents=True, exist_ok=True)
    service.log_file.parent.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as log:
        process = subprocess.Popen(
            list(service.argv),
            env={**os.environ, **service.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    started = _start_time(process.pid)
    service.pid_file.write_text(f"{process.pid} {started}\n")
    return process.pid


def exited(service: Service) -> bool:
    """Started (its pid file is there: only `stop` removes it) and no longer running."""
    return service.pid_file.exists() and running_pid(service) is None


def last_log_line(service: Service) -> str:
    """The last line the service logged: what a process that exited said last."""
    try:
        with service.log_file.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
            lines = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def stop(service: Service, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
    """Stop the service's whole process group; True when something was stopped."""
    pid = running_pid(service)
    recorded = _recorded(service)
    service.pid_file.unlink(missing_ok=True)
    if pid is None:
        if recorded is not None:
            _reap(recorded[0])  # it exited by itself: collect it if this process started it
        return False
    signal_group(pid, sig)
    if not wait_for(lambda: _start_time(pid) is None and not group_alive(pid), timeout):
        signal_group(pid, signal.SIGKILL)
        wait_for(lambda: _start_time(pid) is None, 5.0)
    _reap(pid)
    return True


def kill(service: Service) -> None:
    """SIGKILL the service's process group, as a crash would, and reap it."""
    pid = running_pid(service)
    if pid is None:
        return
    signal_group(pid, signal.SIGKILL)
    wait_for(lambda: _start_time(pid) is None, 10.0)
    _reap(pid)


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def release_children() -> None:
    """Leave the children this process started and that still run to whoever stops them
    later by their pid files (a test run's main process, for servers one of its worker
    processes started): nothing to wait for, nothing to warn about when this one exits."""
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is None:
            child.returncode = 0  # not ours to reap: it runs on after this process
        del _CHILDREN[pid]


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()



def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
