"""Local processes and ports, through psutil: who a process is, what runs in a process group,
who holds a port, a free port. Used where flinksched starts processes itself (a job's own
cluster on this host, the dev stack).

A process is known by its pid *and* its start time: a pid alone may be a stranger's after a
reboot or a wrap-around. The start time is counted in clock ticks since boot, as the kernel
keeps it, so that records written by earlier versions still name the same processes.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return round((process.create_time() - psutil.boot_time()) * CLOCK_TICKS)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def group_alive(pgid: int) -> list[int]:
    """Pids of the live processes of a process group."""
    alive = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return alive


def environments(marker: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(pid, environment) of every live process whose environment has the variable `marker`."""
    for process in psutil.process_iter():
        try:
            environment = process.environ()
            if marker in environment and process.status() != psutil.STATUS_ZOMBIE:
                yield process.pid, environment
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue


def holder(port: int) -> str | None:
    """"pid N (command line)" of the process listening on `port` on any address, "an unknown
    process" when the socket is there but its owner cannot be seen, None when nobody listens."""
    listening = [c for c in psutil.net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    if not listening:
        return None
    for connection in listening:
        if connection.pid:
            return f"pid {connection.pid} ({command_line(connection.pid)})"
    return "an unknown process"


def command_line(pid: int, limit: int = 160) -> str:
    try:
        text = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Ports handed out below the kernel's ephemeral range: a port from within it, free when
# chosen, is taken as the local port of any outgoing connection in the seconds before the
# server it was chosen for (a JVM starting) binds it.
LOWEST_CHOSEN_PORT = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_CHOICE = random.SystemRandom()  # never a seeded sequence another process repeats
# A port handed out is claimed for a while, machine-wide, by a file named after it: another
# flinksched process choosing in the seconds before the first one's server binds it (a test
# stack's ZooKeeper, a worker starting a job's own cluster) finds it free but claimed.
PORT_CLAIMS = Path(tempfile.gettempdir()) / "flinksched-port-claims"
CLAIM_SECONDS = 900.0


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("", port))  # every address: a server on any of them holds it
        except OSError:
            return False
        return True


def claim_port(port: int) -> bool:
    """Claim `port` for the next CLAIM_SECONDS; False when another process holds a claim on
    it (or this one does: each port is handed out once a window)."""
    PORT_CLAIMS.mkdir(parents=True, exist_ok=True)
    claim = PORT_CLAIMS / str(port)
    try:
        if time.time() - claim.stat().st_mtime < CLAIM_SECONDS:
            return False
        claim.unlink(missing_ok=True)  # an old claim: its server bound the port long ago
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        return False  # claimed this instant by another process
    return True


def free_port() -> int:
    """A port nobody listens on now and no flinksched process chose lately, outside the
    kernel's ephemeral range where the system tells it (so that no outgoing connection takes
    it before its server binds it); else the kernel's choice on loopback."""
    low = _ephemeral_low()
    if low > LOWEST_CHOSEN_PORT + 1000:
        for _ in range(200):
            port = _CHOICE.randrange(LOWEST_CHOSEN_PORT, low)
            if bindable(port) and claim_port(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
