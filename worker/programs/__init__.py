"""What a job runs, turned into what Flink starts: for every kind of program
(`common.spec.programs`), the jar Flink is given, the class that starts it and its arguments.
A session cluster runs that jar over REST; a job's own cluster starts with it.

A jar job's jar is the user's. A Python or SQL program is started by a driver, taken from
the worker's distribution of the cluster's Flink line (`worker.distributions`). A SQL script
reaches the driver inline, whatever file holds it: the JobManager need not see the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from common.spec.programs import JarProgram, Program, PythonProgram, SqlProgram
from worker.distributions import Distribution


@dataclass(frozen=True)
class Launchable:
    """A program as Flink starts it."""

    jar_uri: str  # the jar Flink is given (the user's, or one that runs the program)
    jar_sha256: str | None  # its content, when the spec names it
    entry_class: str | None  # None: the jar's own main class
    args: tuple[str, ...]  # the program's arguments


# Reads a file a program names (a path or URI), for a SQL script the driver is given inline.
ReadText = Callable[[str], str]


def launchable(program: Program, args: tuple[str, ...], drivers: Callable[[], Distribution],
               read_text: ReadText) -> Launchable:
    """What Flink is given for `program`, with the job's `args`. `drivers` is asked only
    for a program that is not a jar."""
    if isinstance(program, JarProgram):
        return Launchable(program.uri, program.sha256, program.entry_class, args)
    if isinstance(program, PythonProgram):
        started = ("-py", as_path(program.file)) if program.file else ("-pym", str(program.module))
        path = ("-pyfs", ",".join(as_path(uri) for uri in program.path)) if program.path else ()
        jar, driver = drivers().python_driver()
        return Launchable(jar, None, driver, (*started, *path, *args))
    if isinstance(program, SqlProgram):
        jar, driver = drivers().sql_driver()
        script = program.script if program.script is not None else read_text(str(program.file))
        return Launchable(jar, None, driver, ("--script", script))
    raise TypeError(f"no way to start a program of kind {type(program).__name__}")


def jar_only() -> Distribution:
    """The drivers of a caller that starts jars only."""
    raise TypeError("a Python or SQL program needs the worker's Flink distributions")


def no_files(uri: str) -> str:
    raise TypeError(f"{uri}: a program's file needs the worker's jar cache")


def as_path(uri: str) -> str:
    """A program file as the JobManager's driver names it: a local path for file:// and
    local:// (a path in the image), any other URI as it is (Flink's filesystems read it)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("file", "local"):
        return unquote(parsed.path)
    return uri
