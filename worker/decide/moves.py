"""A job that moved to another cluster: where its current attempt runs, and what is left of
it on the cluster it left. Pure, like `worker.decide.rules`; the supervisor observes the previous
cluster's attempts of the job, asks `left_behind`, and acts on the answer.

The attempt the status names is stopped where it runs (by the upgrade the move is: a
savepoint, or a cancel, as `upgradeMode` says) before the next starts on the new cluster, so
a move never runs the job twice. Once the previous cluster has nothing of the job's running
and the status names an attempt it does not know, the previous cluster is done with.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.flink.jobstate import JobState


@dataclass(frozen=True)
class LeftBehind:
    runs_there: bool  # the status's attempt is known to the previous cluster: act on it there
    orphans: tuple[str, ...] = ()  # other attempts still alive there: cancel them
    done: bool = False  # nothing of the job's left there: release it, stop looking


def left_behind(listed: dict[str, str], current_job_id: str) -> LeftBehind:
    """`listed`: the job's attempts the previous cluster knows (Flink job id -> state).
    A status that names no attempt (ZooKeeper lost its data) adopts one alive there rather
    than cancel it: the new cluster's checkpoint directory may not hold its state."""
    if current_job_id and current_job_id in listed:
        return LeftBehind(runs_there=True)
    alive = tuple(sorted(job_id for job_id, state in listed.items()
                         if not JobState.parse(state).terminal))
    if alive and not current_job_id:
        return LeftBehind(runs_there=True)
    return LeftBehind(runs_there=False, orphans=alive, done=not alive)
