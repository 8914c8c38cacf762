"""Building observations for the decision tests: a job, its status, and what Flink shows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from common.flink.jobids import flink_job_id
from common.flink.jobstate import JobState
from common.spec.models import FlinkJobSpec
from common.store.records import Checkpoint, JobRecord, JobStatus, Phase
from worker.decide.decisions import Decision, Gather
from worker.decide.observation import (
    Clock,
    FlinkView,
    Hold,
    Need,
    Observation,
    RestoreCandidates,
)
from worker.decide.rules import decide

NAME = "orders"
OWNER = "worker-a"
NOW = 1_800_000_000.0
PLACEHOLDER = "<checkpoint-not-externally-addressable>"


def job_id(attempt: int) -> str:
    return flink_job_id(NAME, attempt)


def checkpoint(attempt: int, number: int, age: float = 0.0) -> Checkpoint:
    """A checkpoint of an attempt on remote storage (Flink checks it when it restores)."""
    return Checkpoint(f"s3://ckpt/{job_id(attempt)}/chk-{number}", number,
                      int((NOW - 100 + number - age) * 1000))


def record(generation: int = 1, submit_hash: str = "h1", removed_at: float = 0.0,
           job: dict[str, Any] | None = None, **spec: Any) -> JobRecord:
    document = FlinkJobSpec.model_validate(
        {"job": {"jarURI": "file:///jobs/orders.jar", **(job or {})}, **spec})
    return JobRecord(NAME, document.model_dump(mode="json"),
                     {"metadata": {"name": "default"}, "spec": {"restUrl": "http://flink:8081"}},
                     generation, "spec-hash", "configs/orders.yaml", submit_hash=submit_hash,
                     removed_at=removed_at)


def status(phase: Phase = Phase.RUNNING, attempt: int = 3, **changes: Any) -> JobStatus:
    fields: dict[str, Any] = {"flink_job_id": job_id(attempt) if attempt else "",
                              "observed_generation": 1, "submit_hash": "h1", "worker": OWNER}
    return JobStatus(phase=phase, attempt=attempt, **{**fields, **changes})


def observe(current: JobStatus, state: JobState | None = JobState.RUNNING, *,
            job: JobRecord | None = None, listed: dict[str, str] | None = None,
            **fields: Any) -> Observation:
    """What a cycle saw; `listed` defaults to Flink listing the current attempt in `state`."""
    flink = fields.pop("flink", None)
    if flink is None:
        if listed is None:
            listed = {job_id(current.attempt): str(state)} if current.attempt and state else {}
        flink = FlinkView(state=state, listed=listed)
    return Observation(owner=OWNER, record=job or record(), status=current,
                       clock=Clock(NOW, 5_000.0), flink=flink, **fields)


def settle(observation: Observation, points: tuple[Checkpoint, ...] = (),
           problems: dict[str, str] | None = None, unreachable: str = "",
           finalizing: Checkpoint | None = None) -> Decision:
    """Decide, answering each Gather as the observer would, with these candidates (and, with
    `unreachable`, a storage that did not answer; with `finalizing`, a checkpoint Flink
    reports in progress)."""
    for _ in range(4):
        decision = decide(observation)
        if not isinstance(decision.action, Gather):
            return decision
        need = decision.action.need
        found = points if need is not Need.NONE else ()
        observation = observation.with_restore(
            RestoreCandidates(need, found, problems or {},
                              unreachable if need is not Need.NONE else "",
                              finalizing if need is not Need.NONE else None),
            observation.flink.listed or {})
    raise AssertionError("decide kept asking to gather")


def suspended() -> Hold:
    return Hold(Phase.SUSPENDED, "suspended in the job spec")


def with_flink(observation: Observation, **changes: Any) -> Observation:
    return replace(observation, flink=replace(observation.flink, **changes))
