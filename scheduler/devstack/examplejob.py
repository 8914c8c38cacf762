"""Compiles the example job in examples/ with javac against the fetched flink-dist jar."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from common.errors import DevStackError

ENTRY_CLASS = "dev.flinksched.examples.StatefulCounter"
JAR_NAME = "flinksched-example.jar"


def source_dir(repo: Path) -> Path:
    return repo / "examples" / "stateful-counter" / "src"


def build_example_jar(repo: Path, dist_jar: Path, out_dir: Path) -> Path:
    """The example jar, rebuilt only when its sources changed."""
    sources = sorted(source_dir(repo).rglob("*.java"))
    if not sources:
        raise DevStackError(f"no Java sources under {source_dir(repo)}")
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    stamp = out_dir / f"{JAR_NAME}.sha256"
    jar = out_dir / JAR_NAME
    if jar.is_file() and stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return jar
    for tool in ("javac", "jar"):
        if shutil.which(tool) is None:
            raise DevStackError(f"`{tool}` not found: install a JDK 17 or newer (openjdk-17-jdk)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        _run(["javac", "-nowarn", "--release", "17", "-cp", str(dist_jar), "-d", classes,
              *map(str, sources)])
        _run(["jar", "--create", "--file", str(jar), "--main-class", ENTRY_CLASS,
              "-C", classes, "."])
    stamp.write_text(digest.hexdigest())
    return jar


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevStackError(f"`{command[0]}` failed:\n{result.stderr.strip()[-2000:]}")
