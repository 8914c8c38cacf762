"""A Python with PyFlink of a cluster's own version, for the dev stack's JobManagers (which
run a Python program's driver) and TaskManagers (which run its Python functions): a
virtualenv in the cache per Flink version, made once.

PyFlink is installed from the wheel the distribution was unpacked from, with the
dependencies it declares except `apache-flink-libraries`: the jars, which a PyFlink program
started by Flink's PythonDriver reaches through the JVM that started it, not its own copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from common.errors import DevStackError
from scheduler.devstack.filelock import exclusive
from scheduler.devstack.flinkhome import cache_dir

LIBRARIES = "apache-flink-libraries"


def python_of(version: str) -> Path:
    """The interpreter of the PyFlink virtualenv of `version` (made by `ensure_pyflink`)."""
    return cache_dir() / f"pyflink-{version}" / "bin" / "python"


def ensure_pyflink(version: str) -> Path:
    """The PyFlink interpreter of `version`, installing it on first use."""
    python = python_of(version)
    done = python.parent.parent / ".installed"
    if done.is_file():
        return python
    # Test processes start stacks of one version at once: one installs, the others wait.
    with exclusive(cache_dir() / f".pyflink-{version}.lock"):
        if not done.is_file():
            _install(version, python.parent.parent)
    return python


def _install(version: str, venv: Path) -> None:
    wheels = sorted((cache_dir() / "wheels").glob(f"apache_flink-{version}-*.whl"))
    if not wheels:
        raise DevStackError(f"no apache-flink {version} wheel in {cache_dir() / 'wheels'}: "
                            "the Flink distribution is fetched first")
    staging = venv.with_name(f".{venv.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _run([sys.executable, "-m", "venv", str(staging)], f"a virtualenv for PyFlink {version}")
        pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "-q",
               "--disable-pip-version-check"]
        _run([*pip, *requirements(wheels[-1])], f"PyFlink {version}'s dependencies")
        _run([*pip, "--no-deps", str(wheels[-1])], f"PyFlink {version}")
        shutil.rmtree(venv, ignore_errors=True)
        staging.rename(venv)  # a virtualenv's scripts name its path: fix them after the move
        _relocate(staging, venv)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (venv / ".installed").write_text(version)


def requirements(wheel: Path) -> list[str]:
    """What the wheel requires (its Requires-Dist, markers kept), but Flink's jars."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    found = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
             if line.startswith("Requires-Dist:")]
    return [r for r in found if not r.replace("_", "-").lower().startswith(LIBRARIES)]


def _relocate(old: Path, new: Path) -> None:
    """Scripts of a virtualenv made at `old` name its interpreter there: point them at `new`."""
    old_text, new_text = str(old).encode(), str(new).encode()
    for script in (new / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            data = script.read_bytes()
            if old_text in data[:512]:
                script.write_bytes(data.replace(old_text, new_text))
    config = new / "pyvenv.cfg"
    config.write_bytes(config.read_bytes().replace(old_text, new_text))


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevStackError(f"could not install {what}: {result.stderr.strip()[-800:]}")
