"""Distrust of restore points: what is checked before a path is submitted, and how a failed
restore is told apart from a failing job. Pure functions, no Flink and no ZooKeeper.

A restore point read from Flink, ZooKeeper or disk drives a submission only once it is a real
URI (never Flink's `<checkpoint-not-externally-addressable>` placeholder) whose metadata exists
where that can be seen (local and `file:` storage). A restore Flink rejects is classified from
its root cause: unreadable (try the next-newest point at once) or incompatible with the program
(hold with Flink's message: retrying cannot help).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from common.store.records import Checkpoint, JobStatus, RejectedRestore

METADATA = "_metadata"
CHK_DIR = re.compile(r"^chk-(\d+)$")
# What Flink reports as external_path for a checkpoint kept only in the JobManager's memory.
PLACEHOLDER_PREFIX = "<"

# Root causes that mean "the restore point could not be read", whatever the program.
UNREADABLE_MARKERS = (
    "Cannot find meta data file",
    "Cannot find checkpoint or savepoint",
    "Unexpected magic number",
    "Cannot access file system for checkpoint/savepoint path",
    "not a valid file URI",
    "Failed to load checkpoint metadata",
    "Failed to load savepoint metadata",
)
# Root causes that mean "the state cannot be mapped onto this program": a new attempt from the
# same point fails the same way.
INCOMPATIBLE_MARKERS = (
    "Cannot map checkpoint/savepoint state",
    "allowNonRestoredState",
    "StateMigrationException",
    "must not be incompatible",
)
INCOMPATIBLE_HINT = (
    "the restored state does not fit the program (changed or removed operators, or a changed "
    "state type). Set spec.job.allowNonRestoredState: true to drop state that no operator "
    "takes, restart from another point with `flinksched restart NAME --from PATH`, or start "
    "afresh with `flinksched restart NAME --from-empty`"
)


class FailureClass(enum.Enum):
    ORDINARY = "ordinary"  # the job failed: the restart policy applies
    RESTORE_UNREADABLE = "restore-unreadable"  # the restore point cannot be read: try the next
    RESTORE_INCOMPATIBLE = "restore-incompatible"  # the state does not fit: hold, no retry


def classify_failure(cause: str, restored_from: str, *, ever_ran: bool) -> FailureClass:
    """Why an attempt failed. A restore can only be at fault for an attempt that restored from
    a point and never ran (state-type mismatches also show once tasks deploy)."""
    if any(marker in cause for marker in INCOMPATIBLE_MARKERS):
        return FailureClass.RESTORE_INCOMPATIBLE if restored_from else FailureClass.ORDINARY
    if not restored_from or ever_ran:
        return FailureClass.ORDINARY
    if any(marker in cause for marker in UNREADABLE_MARKERS):
        return FailureClass.RESTORE_UNREADABLE
    local = local_path(restored_from)
    if local is not None and str(local) in cause and "Exception" in cause:
        return FailureClass.RESTORE_UNREADABLE  # an I/O error naming the restore point
    return FailureClass.ORDINARY


def is_placeholder(path: str) -> bool:
    return path.strip().startswith(PLACEHOLDER_PREFIX)


def local_path(uri: str) -> Path | None:
    """The filesystem path of a local (`file:` or plain absolute) location, else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def location(uri: str) -> str:
    """One spelling per place: Flink writes `file:/ckpt/x`, a directory listing `file:///ckpt/x`;
    both are the same restore point (and the same rejected one)."""
    local = local_path(uri)
    return local.as_posix().rstrip("/") if local is not None else uri.rstrip("/")


def malformed(path: str) -> str | None:
    """What is wrong with `path` as a restore point by its form alone (no storage is read):
    None when it may name one."""
    if not path.strip():
        return "empty path"
    if is_placeholder(path):
        return (f"{path} is Flink's placeholder for a checkpoint kept only in the JobManager's "
                "memory (the cluster has no execution.checkpointing.dir)")
    parsed = urlparse(path)
    if parsed.scheme == "" and not path.startswith("/"):
        return f"{path} is not a URI or an absolute path"
    return None


def newest(candidates: Iterable[Checkpoint | None]) -> Checkpoint | None:
    """The candidate that completed last; a higher id breaks a tie."""
    found = [c for c in candidates if c is not None and c.path]
    return max(found, key=lambda c: (c.timestamp, c.id), default=None)


def checkpoint_number(path: str) -> int:
    """N of a `.../chk-N` path; 0 for a savepoint or anything else."""
    match = CHK_DIR.match(path.rstrip("/").rsplit("/", 1)[-1])
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class RestoreChoice:
    """The restore point chosen among the candidates, and those passed over, with why."""

    point: Checkpoint | None
    rejected: tuple[RejectedRestore, ...] = ()  # failed the check just now
    candidates: int = 0  # distinct candidate paths considered, rejected or not

    @classmethod
    def of(cls, point: Checkpoint | None) -> RestoreChoice:
        """A point chosen by someone who knows (a savepoint just taken, an operator), or None:
        empty state on purpose."""
        return cls(point, (), 0)

    @property
    def exhausted(self) -> bool:
        """Candidates existed and none is usable: starting from empty state would lose state."""
        return self.point is None and self.candidates > 0


def choose(candidates: Iterable[Checkpoint | None], rejected_before: frozenset[str], now: float,
           check: Callable[[str], str | None] = malformed) -> RestoreChoice:
    """The newest candidate that was not rejected before and passes `check`; a higher id breaks
    a tie in completion time. Every candidate passed over on the way is reported."""
    seen: dict[str, Checkpoint] = {}
    for candidate in candidates:
        if candidate is None or not candidate.path:
            continue
        place = location(candidate.path)
        known = seen.get(place)
        if known is None or (candidate.timestamp, candidate.id) > (known.timestamp, known.id):
            seen[place] = candidate
    ordered = sorted(seen.values(), key=lambda c: (c.timestamp, c.id), reverse=True)
    rejected_places = {location(path) for path in rejected_before}
    passed_over: list[RejectedRestore] = []
    for candidate in ordered:
        if location(candidate.path) in rejected_places:
            continue
        reason = check(candidate.path)
        if reason is None:
            return RestoreChoice(candidate, tuple(passed_over), len(ordered))
        passed_over.append(RejectedRestore(candidate.path, reason, now))
    return RestoreChoice(None, tuple(passed_over), len(ordered))


def no_restore_point_reason(name: str, rejected: Iterable[RejectedRestore]) -> str:
    """The NoRestorePoint phase's reason: what was rejected and why, and what resolves it."""
    listed = "; ".join(f"{r.path}: {r.reason}" for r in rejected) or "none"
    return (f"no usable restore point; rejected: {listed}. Resolve with "
            f"`flinksched restart {name} --from PATH` (a checkpoint or savepoint to restore) "
            f"or `flinksched restart {name} --from-empty` (start without state)")


def own_checkpoint(status: JobStatus) -> bool:
    """The current attempt completed a checkpoint of its own (not the point it started from)."""
    checkpoint = status.last_checkpoint
    return bool(checkpoint and status.flink_job_id
                and f"/{status.flink_job_id}/chk-" in checkpoint.path)
