"""Debian packages the local stack needs (zookeeper, prometheus), installed when missing."""

from __future__ import annotations

import os
import subprocess

from common.errors import DevStackError


def install_debian_packages(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DevStackError(
                f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}"
            )
