"""What a Flink distribution of the dev stack needs in opt/ to run Python and SQL programs
(`worker.distributions`): from 2.0 on the SQL gateway's jar, which Flink's SqlDriver loads
from opt/ and the wheels from PyPI leave out (fetched from Maven Central); on 1.x
flinksched's SQL runner, compiled against that Flink. flink-python ships in opt/ already."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from common.flink.versions import parse_version
from scheduler.devstack.javabuild import SQL_RUNNER, build_jar
from scheduler.devstack.maven import artifact


def place_sql_driver(home: Path, version: str, repo: Path, build_dir: Path) -> Path:
    """The jar in `home`/opt/ that runs SQL scripts on `version`, put there when missing or
    changed."""
    if parse_version(version).major >= 2:
        jar = artifact("org.apache.flink", "flink-sql-gateway", version)
        target = home / "opt" / jar.name
    else:
        jar = build_jar(SQL_RUNNER, repo, home / "lib" / f"flink-dist-{version}.jar",
                        build_dir)
        target = home / "opt" / SQL_RUNNER.name
    if not target.is_file() or target.stat().st_size != jar.stat().st_size or (
            target.read_bytes() != jar.read_bytes()):
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(jar, partial)
        partial.replace(target)  # whole: a JobManager may be loading it
    return target
