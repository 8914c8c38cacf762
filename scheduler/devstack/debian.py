"""Debian packages the local stack needs (zookeeper, prometheus), installed when missing."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from common.errors import DevStackError
from scheduler.devstack.filelock import exclusive

# Test processes that start stacks at once install one at a time (apt refuses a second
# apt-get while one holds the dpkg lock); any other holder of apt's locks is waited for.
LOCK = Path(tempfile.gettempdir()) / "flinksched-apt.lock"
APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=300"]


def install_debian_packages(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with exclusive(LOCK):
        for command in (["apt-get", *APT_LOCK_WAIT, "update", "-q"],
                        ["apt-get", *APT_LOCK_WAIT, "install", "-y", "-q",
                         "--no-install-recommends", *packages]):
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise DevStackError(
                    f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}"
                )
