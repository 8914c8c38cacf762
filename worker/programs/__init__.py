"""What a job runs, turned into what Flink starts: for every kind of program
(`common.spec.programs`), the jar Flink is given, the class that starts it and its arguments.
A session cluster runs that jar over REST; a job's own cluster starts with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.spec.programs import JarProgram, Program


@dataclass(frozen=True)
class Launchable:
    """A program as Flink starts it."""

    jar_uri: str  # the jar Flink is given (the user's, or one that runs the program)
    jar_sha256: str | None  # its content, when the spec names it
    entry_class: str | None  # None: the jar's own main class
    args: tuple[str, ...]  # the program's arguments


def launchable(program: Program, args: tuple[str, ...]) -> Launchable:
    """What Flink is given for `program`, with the job's `args`."""
    if isinstance(program, JarProgram):
        return Launchable(program.uri, program.sha256, program.entry_class, args)
    raise TypeError(f"no way to start a program of kind {type(program).__name__}")
