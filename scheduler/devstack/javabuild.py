"""The project's Java pieces, compiled with javac against the fetched Flink's jars: the
example job (examples/), the status listener a Flink cluster loads (flink-listener/) and the
runner of SQL scripts on Flink lines without a SQL driver (sql-runner/)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.errors import DevStackError


@dataclass(frozen=True)
class JavaJar:
    name: str  # the jar's file name
    sources: str  # the source tree, relative to the repository
    main_class: str = ""
    libs: tuple[str, ...] = ()  # jars of Flink's lib/ it compiles against besides flink-dist

    def source_dir(self, repo: Path) -> Path:
        return repo / self.sources


EXAMPLE_JOB = JavaJar("flinksched-example.jar", "examples/stateful-counter/src",
                      "dev.flinksched.examples.StatefulCounter",
                      libs=("flink-table-api-java-uber-*.jar",))  # its SQL function
STATUS_LISTENER = JavaJar("flinksched-listener.jar", "flink-listener/src")
LISTENER_FACTORY = "dev.flinksched.listener.StatusPushFactory"
SQL_RUNNER = JavaJar("flinksched-sql-runner.jar", "sql-runner/src",
                     libs=("flink-table-api-java-uber-*.jar",))


def build_jar(jar: JavaJar, repo: Path, dist_jar: Path, out_dir: Path) -> Path:
    """The jar, rebuilt only when its sources (or the Flink it compiles against) changed."""
    sources = sorted(jar.source_dir(repo).rglob("*.java"))
    classpath = [dist_jar, *(found for pattern in jar.libs
                             for found in sorted(dist_jar.parent.glob(pattern)))]
    if not sources:
        raise DevStackError(f"no Java sources under {jar.source_dir(repo)}")
    digest = hashlib.sha256(dist_jar.name.encode())
    for source in sources:
        digest.update(source.read_bytes())
    stamp = out_dir / f"{jar.name}.sha256"
    built = out_dir / jar.name
    if built.is_file() and stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return built
    for tool in ("javac", "jar"):
        if shutil.which(tool) is None:
            raise DevStackError(f"`{tool}` not found: install a JDK 17 or newer (openjdk-17-jdk)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        _run(["javac", "-nowarn", "--release", "17", "-cp", ":".join(map(str, classpath)),
              "-d", classes,
              *map(str, sources)])
        entry = ["--main-class", jar.main_class] if jar.main_class else []
        _run(["jar", "--create", "--file", str(built), *entry, "-C", classes, "."])
    stamp.write_text(digest.hexdigest())
    return built


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevStackError(f"`{command[0]}` failed:\n{result.stderr.strip()[-2000:]}")
