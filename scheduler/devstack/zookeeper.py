"""The real ZooKeeper server: Debian's `zookeeper` package, or the one under ZOOKEEPER_HOME."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from common.errors import DevStackError
from scheduler.devstack.debian import install_debian_packages

DEBIAN_HOME = Path("/usr/share/zookeeper")


def find_server_script() -> Path | None:
    homes = [Path(os.environ["ZOOKEEPER_HOME"])] if os.environ.get("ZOOKEEPER_HOME") else []
    homes.append(DEBIAN_HOME)
    for home in homes:
        script = home / "bin" / "zkServer.sh"
        if script.is_file():
            return script
    return None


def ensure_server_script() -> Path:
    """zkServer.sh, installing Debian's package when it is missing and we are root."""
    script = find_server_script()
    if script is not None:
        return script
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DevStackError(
            "ZooKeeper is not installed: run `sudo apt-get install zookeeper`, "
            "or set ZOOKEEPER_HOME to an unpacked ZooKeeper release"
        )
    install_debian_packages(["zookeeper"])
    script = find_server_script()
    if script is None:
        raise DevStackError("installed the zookeeper package but zkServer.sh is still missing")
    return script


def write_zoo_cfg(state_dir: Path, port: int, server_id: int = 0,
                  peers: Sequence[tuple[int, int]] = ()) -> Path:
    """A standalone server's config, or with `peers` ((quorum port, election port) of every
    server, this one's at `server_id` - 1) one member of an ensemble."""
    data_dir = state_dir / "zookeeper"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "zoo.cfg"
    members = [f"server.{n}=127.0.0.1:{quorum}:{election}"
               for n, (quorum, election) in enumerate(peers, start=1)]
    if peers:
        (data_dir / "myid").write_text(f"{server_id}\n")
    config.write_text(
        "\n".join(
            [
                "tickTime=500",
                "initLimit=10",
                "syncLimit=5",
                f"dataDir={data_dir.resolve()}",
                f"clientPort={port}",
                "clientPortAddress=127.0.0.1",
                "minSessionTimeout=1000",
                "maxSessionTimeout=60000",
                "admin.enableServer=false",
                "4lw.commands.whitelist=ruok,srvr,stat,mntr",
                *members,
                "",
            ]
        )
    )
    return config
