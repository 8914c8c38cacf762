"""Which checkpoint directories of a job's earlier attempts may be deleted. Pure functions:
the listing is read and the directories deleted by `worker.statekeeping`.

Each attempt of a job is its own Flink job id, and Flink writes its checkpoints under
`<checkpoint dir>/<flink job id>/`; Flink deletes the checkpoints an attempt subsumes, never
those of an attempt that ended. An earlier attempt's directory is deleted once

- the current attempt has completed a checkpoint of its own: in NO_CLAIM mode (Flink's
  default) the first checkpoint after a restore is a full one, so from then on nothing of the
  current attempt refers to files of the point it was restored from;
- it is not among the `retain` newest earlier attempts that hold a completed checkpoint (the
  fallback should the current attempt's checkpoints prove unreadable);
- no restore point the status still names (its checkpoint, its savepoints, the spec's
  initial savepoint) lies in it.

In CLAIM mode Flink takes the restored checkpoint over, and an incremental checkpoint may keep
referring to its files; LEGACY mode makes no promise either: with either nothing is deleted.
Directories of attempts numbered above the current one (state of an earlier life of a job of
the same name) are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from common.flink.jobids import attempt_of
from worker.decide.restore_rules import CHK_DIR, METADATA, location

NO_CLAIM = "NO_CLAIM"


@dataclass(frozen=True)
class AttemptState:
    """What one attempt left under the checkpoint directory."""

    attempt: int
    uri: str  # `<checkpoint dir>/<flink job id>`
    objects: int
    bytes: int
    checkpoints: int  # complete ones: chk-N with a _metadata


@dataclass(frozen=True)
class Prune:
    delete: tuple[AttemptState, ...]
    kept: tuple[AttemptState, ...]
    held: str = ""  # why nothing is deleted yet, when nothing is
    off: bool = False  # retention does not apply in the job's restore mode (`held` says why)


def attempt_states(name: str, base: str,
                   entries: Iterable[tuple[str, int]]) -> list[AttemptState]:
    """Group a listing of `<base>/<name prefix>...` (URI and size of each object) by the
    attempt whose directory holds it; objects of other jobs' ids are ignored."""
    base = base.rstrip("/")
    found: dict[str, list[int]] = {}
    for uri, size in entries:
        parts = uri[len(base) + 1:].split("/")
        if attempt_of(name, parts[0]) is None:
            continue
        counts = found.setdefault(parts[0], [0, 0, 0])
        counts[0] += 1
        counts[1] += size
        if len(parts) == 3 and parts[2] == METADATA and CHK_DIR.match(parts[1]):
            counts[2] += 1
    states = [AttemptState(attempt_of(name, job_id) or 0, f"{base}/{job_id}", *counts)
              for job_id, counts in found.items()]
    return sorted(states, key=lambda s: s.attempt)


def claim_mode(configured: str | None) -> str:
    """The restore mode Flink applies (its default when nothing is configured)."""
    return (configured or NO_CLAIM).strip().upper().replace("-", "_")


def prune(states: Iterable[AttemptState], current: int, own_checkpoint: bool, retain: int,
          protected: Iterable[str], mode: str = NO_CLAIM) -> Prune:
    """The earlier attempts' directories to delete, and those kept."""
    states = sorted(states, key=lambda s: s.attempt)
    if mode != NO_CLAIM:
        return Prune((), tuple(states), f"restore mode {mode}: an attempt's checkpoints may "
                                        "build on the files of the point it was restored from",
                     off=True)
    if not own_checkpoint:
        return Prune((), tuple(states),
                     f"attempt {current} has completed no checkpoint of its own yet")
    places = [location(path) for path in protected if path]
    fallbacks = [s for s in states if s.attempt < current and s.checkpoints][::-1][:retain]
    delete = [s for s in states if s.attempt < current and s not in fallbacks
              and not any(_inside(place, location(s.uri)) for place in places)]
    return Prune(tuple(delete), tuple(s for s in states if s not in delete))


def _inside(place: str, directory: str) -> bool:
    return place == directory or place.startswith(directory + "/")
