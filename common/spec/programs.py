"""What a job runs, as one typed value whatever its kind: the spec's `job` section names it
with the fields of its kind (a jar: `jarURI`, `entryClass`, `jarSHA256`), and each
deployment target turns it into what Flink starts (`worker.programs`).

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


Program = JarProgram
# The spec fields that name a program's files, by kind: each resolves against its YAML file.
URI_FIELDS = ("jarURI",)
