"""Who holds a TCP port: the dev stack never adopts a process it did not start.

A JobManager left on 8081 by another installation answers the REST API like ours would, with
another configuration (no checkpoint directory, other heartbeats): starting beside it fails
quietly and using it misleads. The listening socket's inode, from /proc/net/tcp, leads to the
process that holds it.
"""

from __future__ import annotations

import os
from pathlib import Path

LISTEN = "0A"  # the socket state column of /proc/net/tcp


def listening_inodes(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def holder(port: int) -> str | None:
    """"pid N (command line)" of the process listening on `port`, "an unknown process" when
    the socket is there but its owner cannot be seen, None when nobody listens."""
    inodes = listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = os.listdir(entry / "fd")
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(entry / "fd" / descriptor) in targets:
                    return f"pid {entry.name} ({command_line(int(entry.name))})"
            except OSError:
                continue
    return "an unknown process"


def command_line(pid: int, limit: int = 160) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= limit else text[: limit - 1] + "…"
