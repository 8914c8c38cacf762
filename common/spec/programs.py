"""What a job runs, as one typed value whatever its kind: the spec's `job` section names it
with the fields of its kind, and each deployment target turns it into what Flink starts
(`worker.programs`):

- a jar: `jarURI`, `entryClass`, `jarSHA256`;
- a Python program: `pyFile` (a .py file) or `pyModule` (a module on its Python path), and
  `pyFiles` (archives or directories added to that path);
- a SQL script: `sql` (the statements inline) or `sqlFile`.

A new kind of program is one class here (its fields, the files it names) and one in
`worker.programs` (what Flink is given for it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JarProgram:
    """A jar, the class in it that starts the job (or the jar's own main class)."""

    uri: str
    entry_class: str | None = None
    sha256: str | None = None  # the jar's content, checked before it is used

    @property
    def uris(self) -> tuple[str, ...]:
        """The files the program names (a relative path resolves against its YAML file)."""
        return (self.uri,)


@dataclass(frozen=True)
class PythonProgram:
    """A PyFlink program: a file to run, or a module to run from its Python path."""

    file: str | None = None
    module: str | None = None
    path: tuple[str, ...] = ()  # archives or directories put on the program's Python path

    @property
    def uris(self) -> tuple[str, ...]:
        return ((self.file,) if self.file else ()) + self.path


@dataclass(frozen=True)
class SqlProgram:
    """A Flink SQL script: its statements inline, or the file that holds them."""

    script: str | None = None
    file: str | None = None

    @property
    def uris(self) -> tuple[str, ...]:
        return (self.file,) if self.file else ()


Program = JarProgram | PythonProgram | SqlProgram
# The kinds, each with the spec fields that name its program (`KINDS[kind]`): a job sets the
# fields of exactly one.
KINDS = {"jar": ("jarURI",), "Python": ("pyFile", "pyModule"), "SQL": ("sql", "sqlFile")}
# The spec fields that name a program's files, by kind: each resolves against its YAML file.
URI_FIELDS = ("jarURI", "pyFile", "pyFiles", "sqlFile")
