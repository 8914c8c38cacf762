"""git for tests: a fixed identity, failures raise."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=flinksched", "-c",
                           "user.email=tests@flinksched.invalid", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()
