"""The one exception tree of flinksched, and its one typed result of a failure not raised.

Every error raised on purpose derives from FlinkschedError. Flink REST errors say whether a
retry can help (`retryable`), so callers decide between "try again later" and "give up".
ZooKeeper's own exceptions never leave the store: it raises StoreError (StoreUnavailable
when ZooKeeper did not answer, StoreAccessDenied when it refused this identity).

Where a caller goes on without what it asked for (a watch whose read failed, a cluster node
that cannot be used, a job another worker holds), the answer is `Unavailable`, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unavailable:
    """What could not be read or had, and why; `held_by`: the one who has it instead."""

    why: str
    held_by: str = ""


class FlinkschedError(Exception):
    """Root of every error flinksched raises on purpose."""


class ConfigError(FlinkschedError):
    """A problem in a job-config file, located as precisely as the input allows."""

    def __init__(
        self,
        message: str,
        *,
        file: str = "",
        line: int | None = None,
        column: int | None = None,
        field: str = "",
        job: str = "",
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.job = job  # the job the problem belongs to, when its name could be read
        super().__init__(str(self))

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column,
                "field": self.field, "job": self.job, "message": self.message}

    @property
    def location(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.location}:{field} {self.message}"


class StoreError(FlinkschedError):
    """ZooKeeper said no, or holds data flinksched cannot read."""


class StoreUnavailable(StoreError):
    """ZooKeeper did not answer (no connection, the session expired, a timeout): try again."""


class StoreAccessDenied(StoreError):
    """ZooKeeper refused this identity (ACLs): no access, or read-only access and a write."""


class FencedError(StoreError):
    """This process no longer holds the node that entitles it to write (leadership, ownership)."""


class ConflictError(StoreError):
    """A compare-and-set lost against a concurrent writer."""


class StorageUnavailable(FlinkschedError):
    """Object storage (or the disk) holding state or a jar did not answer, refused these
    credentials, or has no such bucket: the message names the location."""


class FlinkError(FlinkschedError):
    """A Flink REST call did not do what was asked."""

    retryable = True


class FlinkUnreachable(FlinkError):
    """No answer from the cluster (refused, timed out, or a 5xx): try again later."""


class FlinkRequestFailed(FlinkError):
    """Flink refused the request for a reason that a retry will not change."""

    def __init__(self, status: int, message: str, path: str) -> None:
        self.status = status
        self.message = message
        self.path = path
        self.retryable = False  # program errors arrive as 500 too; FlinkUnreachable is the retry
        super().__init__(f"{path}: HTTP {status}: {message}")


class FlinkJobNotFound(FlinkError):
    """The cluster does not know the job (or the resource): it was never there, or forgotten."""

    retryable = False


class JobAlreadySubmitted(FlinkError):
    """Flink already knows this job id: the submission happened, adopt it."""


class JarMissing(FlinkError):
    """The cluster forgot the uploaded jar (a restarted JobManager): upload it again."""


class RunRequestBusy(FlinkError):
    """Another flinksched run request holds the session cluster (a Python program's needs it
    alone): submitted again in a moment."""


class ClusterLaunchFailed(FlinkschedError):
    """A job's own cluster could not be started (no Flink distribution of its version, a
    process that would not start): the submission is refused, the restart policy decides."""


class DevStackError(FlinkschedError):
    """The local development stack could not be prepared or started."""
