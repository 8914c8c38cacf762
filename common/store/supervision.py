"""Whether anybody supervises a job, and so whether its status is current: a pure decision.

A status is written by the worker that owned the job when it wrote it. Once that worker has
lost the job (its session expired, it died, it hangs), the status still says what it said:
`Running`, say, while no worker would restart the job if it failed. Readers therefore show a
status as current only while its writer owns the job (its ephemeral `owner` node exists and
names that worker); a job nobody has owned for longer than the grace (a session timeout, the
time a lost owner takes to be noticed) is `Unsupervised`, whatever its status says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.durations import format_duration
from common.store.records import JobStatus, Phase


class Supervision(StrEnum):
    CURRENT = "current"  # its owner wrote the status: it is what it says
    HANDOVER = "handover"  # owned by another worker than the writer, or briefly by none
    UNSUPERVISED = "unsupervised"  # nobody has owned it past the grace


@dataclass(frozen=True)
class Shown:
    """What a reader shows of a job: the phase, its reason, and how it is supervised."""

    phase: Phase
    reason: str
    supervision: Supervision

    @property
    def supervised(self) -> bool:
        return self.supervision is not Supervision.UNSUPERVISED


def shown(status: JobStatus, owner: str | None, unowned_for: float | None,
          writer_alive: bool, grace: float) -> Shown:
    """The job as a reader shows it. `owner`: the worker its owner node names (None: no
    owner node). `unowned_for`: seconds the reader has seen no owner node (None: it cannot
    tell, as a one-off command cannot; then a writer that is no longer registered decides).
    `writer_alive`: the worker the status names is registered."""
    if owner is not None and owner == status.worker:
        return Shown(status.phase, status.reason, Supervision.CURRENT)
    last = (f"last status {status.phase} from worker {status.worker}" if status.worker
            else "no status written yet")
    if owner is not None:
        return Shown(Phase.PENDING, f"taken over by worker {owner}, whose first status is not "
                     f"written yet ({last})", Supervision.HANDOVER)
    if status.phase == Phase.REMOVED:  # stopped for good: there is nothing left to supervise
        return Shown(status.phase, status.reason, Supervision.CURRENT)
    lost = (unowned_for >= grace) if unowned_for is not None else not writer_alive
    if not lost:
        return Shown(Phase.PENDING, f"waiting for a worker to own it ({last})",
                     Supervision.HANDOVER)
    for_how_long = f" for {format_duration(unowned_for)}" if unowned_for is not None else ""
    gone = (f"its last owner, worker {status.worker}, is gone" if status.worker and not
            writer_alive else "no worker has taken it")
    return Shown(Phase.UNSUPERVISED, f"no worker supervises it{for_how_long}: {gone} ({last}); "
                 "a failure would not be restarted", Supervision.UNSUPERVISED)
