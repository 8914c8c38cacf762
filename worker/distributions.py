"""The Flink distributions on the worker's host (`--flink-home`): local application clusters
start from them, and a Python or SQL program takes its driver from the one of its cluster's
Flink line, whatever cluster runs it:

- Python: `PythonDriver`, in opt/flink-python-*.jar;
- SQL from Flink 2.0 on: Flink's `SqlDriver` (in lib/; it loads the SQL gateway's jar from the
  JobManager's opt/, so the session cluster's distribution needs opt/flink-sql-gateway-*.jar);
- SQL on 1.x, which has no SQL driver: flinksched's runner, opt/flinksched-sql-runner.jar
  (the dev stack builds it and puts it there; a production image carries it the same way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from common.errors import ClusterLaunchFailed
from common.flink.versions import FlinkVersion

DIST_JAR = re.compile(r"^flink-dist[_-]?.*?-(\d+\.\d+(?:\.\d+)?(?:-SNAPSHOT)?)\.jar$")
PYTHON_DRIVER = "org.apache.flink.client.python.PythonDriver"
SQL_DRIVER = "org.apache.flink.table.runtime.application.SqlDriver"
SQL_RUNNER = "dev.flinksched.sql.SqlRunner"
SQL_RUNNER_JAR = "flinksched-sql-runner.jar"


@dataclass(frozen=True)
class Distribution:
    home: Path
    version: FlinkVersion | None

    def python_driver(self) -> tuple[str, str]:
        """The jar (a file:// URI) and class that run a Python program."""
        return self._opt_jar(r"flink-python(_[0-9.]+)?-[0-9].*\.jar", "Python programs"), \
            PYTHON_DRIVER

    def sql_driver(self) -> tuple[str, str]:
        """The jar and class that run a SQL script on this distribution's line."""
        if self.version is not None and self.version.major >= 2:
            return self._opt_jar(r"flink-sql-gateway-[0-9].*\.jar", "SQL scripts"), SQL_DRIVER
        runner = self.home / "opt" / SQL_RUNNER_JAR
        if not runner.is_file():
            raise ClusterLaunchFailed(
                f"{runner} is missing: Flink {self.version or ''} has no SQL driver, and "
                "flinksched's runs SQL scripts there (`flinksched dev` puts it in opt/; a "
                "production image carries it the same way)")
        return runner.as_uri(), SQL_RUNNER

    def _opt_jar(self, pattern: str, runs: str) -> str:
        jars = sorted(jar for jar in (self.home / "opt").glob("*.jar")
                      if re.fullmatch(pattern, jar.name))
        if not jars:
            raise ClusterLaunchFailed(
                f"no jar matching {pattern} in {self.home / 'opt'}: the Flink distribution "
                f"the worker takes the driver of {runs} from lacks it")
        return jars[-1].as_uri()


def distribution(home: Path) -> Distribution:
    """A Flink home and its version, read from its flink-dist jar's name."""
    for jar in sorted((home / "lib").glob("flink-dist*.jar")):
        match = DIST_JAR.match(jar.name)
        if match:
            return Distribution(home, FlinkVersion.parse(match.group(1)))
    return Distribution(home, None)


def choose_distribution(found: list[Distribution], line: str | None,
                        purpose: str = "start a job's own cluster with") -> Distribution:
    """The distribution of the cluster's Flink line ("1.20"), or the first when it names
    none; a line no distribution has is refused, naming what there is."""
    if not found:
        raise ClusterLaunchFailed(f"no Flink distribution to {purpose}: give the worker "
                                  "FLINK_HOME (or --flink-home)")
    if line is None:
        return found[0]
    for dist in found:
        if dist.version is not None and f"{dist.version.major}.{dist.version.minor}" == line:
            return dist
    have = ", ".join(f"{d.home} ({d.version or 'version unknown'})" for d in found)
    raise ClusterLaunchFailed(f"the cluster asks for Flink {line} and this worker has no such "
                              f"distribution (it has {have})")
