"""What the simulated cluster holds: jars, jobs with their checkpoints, asynchronous
operations (savepoints, stops, disposals). Pure data and time; no HTTP here."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from common.flink.versions import CHECKPOINT_DIR as CHECKPOINT_DIR_KEY
from common.flink.versions import SAVEPOINT_DIR as SAVEPOINT_DIR_KEY
from common.flink.versions import parse_version
from scheduler.devstack.flinkhome import DEFAULT_VERSION

TERMINAL = ("FAILED", "CANCELED", "FINISHED")
SAVEPOINT_DIR = "file:/sim/savepoints"
CHECKPOINT_DIR = "file:/sim/checkpoints"


def now_ms() -> int:
    return int(time.time() * 1000)


def _interval_ms(value: str | None, default: int) -> int:
    if not value:
        return default
    text = str(value).strip()
    for suffix, factor in (("ms", 1), ("s", 1000), ("min", 60_000), ("m", 60_000)):
        if text.endswith(suffix) and text[: -len(suffix)].strip().isdigit():
            return int(text[: -len(suffix)]) * factor
    return int(text) if text.isdigit() else default


@dataclass
class Job:
    id: str
    name: str
    parallelism: int
    checkpoint_ms: int
    restored: dict[str, Any] | None
    state: str = "RUNNING"
    started: int = field(default_factory=now_ms)
    ended: int = -1
    timestamps: dict[str, int] = field(default_factory=dict)
    failure: str = ""
    frozen_checkpoints: int | None = None  # checkpoints stop when the job ends

    def __post_init__(self) -> None:
        for state in ("INITIALIZING", "CREATED", "RUNNING"):
            self.timestamps[state] = self.started

    def end(self, state: str, failure: str = "") -> None:
        if self.state in TERMINAL:
            return
        self.frozen_checkpoints = self.completed_checkpoints()
        self.state, self.failure, self.ended = state, failure, now_ms()
        self.timestamps[state] = self.ended

    def completed_checkpoints(self) -> int:
        if self.frozen_checkpoints is not None:
            return self.frozen_checkpoints
        return max(0, (now_ms() - self.started) // max(self.checkpoint_ms, 1))

    def checkpoint_path(self, number: int) -> str:
        return f"{CHECKPOINT_DIR}/{self.id}/chk-{number}"


@dataclass
class Operation:
    """A savepoint, stop-with-savepoint or disposal: completes after `delay_ms`."""

    job_id: str
    kind: str  # savepoint | stop | disposal
    created: int = field(default_factory=now_ms)
    delay_ms: int = 200
    location: str = ""
    failure: str = ""

    def done(self) -> bool:
        return now_ms() - self.created >= self.delay_ms


class Cluster:
    def __init__(self, checkpoint_ms: int = 1000, operation_ms: int = 200,
                 flink_version: str = DEFAULT_VERSION) -> None:
        self.flink_version = parse_version(flink_version)  # the Flink it answers as
        self.default_checkpoint_ms = checkpoint_ms
        self.operation_ms = operation_ms
        self.jars: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.operations: dict[str, Operation] = {}
        self.latency_ms = 0
        self.error_status = 0  # answer every request with this status while set
        self.requests: dict[str, int] = {}
        self.in_flight = 0  # Flink API requests being answered now
        self.peak_in_flight = 0  # the most at once since the start or the last reset
        self.scheduled: list[tuple[int, str, str]] = []  # (due epoch ms, "fail"|"lose", job id)
        self._entries: dict[str, bytes] = {}  # each job's entry of GET /jobs, encoded
        self._listing: bytes | None = None  # GET /jobs, encoded; None after any change

    def jobmanager_config(self) -> dict[str, str]:
        """GET /jobmanager/config: the checkpoint keys under the names a cluster of this
        version is typically configured with (1.x names on 1.20, as the dev stack writes)."""
        return {key.configured_name(self.flink_version): value
                for key, value in ((CHECKPOINT_DIR_KEY, CHECKPOINT_DIR),
                                   (SAVEPOINT_DIR_KEY, SAVEPOINT_DIR))} | {
            "web.refresh-interval": "3000"}

    def listing(self) -> bytes:
        """The body of `GET /jobs`. Each job's entry is encoded when its state changes and the
        body joined once per change: thousands of jobs listed by every worker each second
        would otherwise cost the simulator a core."""
        if self._listing is None:
            self._listing = b'{"jobs":[' + b",".join(self._entries.values()) + b"]}"
        return self._listing

    def _changed(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            self._entries.pop(job_id, None)
        else:
            self._entries[job_id] = json.dumps({"id": job.id, "status": job.state}).encode()
        self._listing = None

    # -- jars --------------------------------------------------------------------------
    def upload(self, name: str) -> str:
        jar_id = f"{uuid.uuid4()}_{name}"
        self.jars[jar_id] = {"id": jar_id, "name": name, "uploaded": now_ms(), "entry": []}
        return jar_id

    # -- jobs --------------------------------------------------------------------------
    def run(self, jar_id: str, body: dict[str, Any]) -> str:
        """Submit; raises KeyError (no jar) or ValueError (a job with that id exists)."""
        if jar_id not in self.jars:
            raise KeyError(jar_id)
        job_id = str(body.get("jobId") or uuid.uuid4().hex)
        if job_id in self.jobs:
            raise ValueError(job_id)
        config = body.get("flinkConfiguration") or {}
        interval = _interval_ms(config.get("execution.checkpointing.interval"),
                                self.default_checkpoint_ms)
        restored = None
        if body.get("savepointPath"):
            restored = {"id": 0, "restore_timestamp": now_ms(), "is_savepoint": True,
                        "external_path": str(body["savepointPath"])}
        self.jobs[job_id] = Job(job_id, self.jars[jar_id]["name"], int(body.get("parallelism")
                                or 1), interval, restored)
        self._changed(job_id)
        return job_id

    def fail(self, job_id: str, cause: str = "java.lang.RuntimeException: simulated failure"
             ) -> None:
        self.jobs[job_id].end("FAILED", cause)
        self._changed(job_id)

    def schedule(self, kind: str, job_id: str, after_ms: int) -> None:
        """Fail or lose the job `after_ms` from now (applied before any later request)."""
        self.scheduled.append((now_ms() + after_ms, kind, job_id))
        self.scheduled.sort()

    def apply_due(self) -> None:
        """Apply scheduled faults that are due; a job already ended or gone is left alone."""
        now = now_ms()
        while self.scheduled and self.scheduled[0][0] <= now:
            _, kind, job_id = self.scheduled.pop(0)
            job = self.jobs.get(job_id)
            if job is None or job.state != "RUNNING":
                continue
            if kind == "fail":
                self.fail(job_id)
            else:
                self.lose(job_id)

    def lose(self, job_id: str) -> None:
        """The job vanishes, as after a JobManager restart without HA."""
        self.jobs.pop(job_id, None)
        self._changed(job_id)

    def cancel(self, job_id: str) -> None:
        self.jobs[job_id].end("CANCELED")
        self._changed(job_id)

    # -- operations ----------------------------------------------------------------------
    def start_operation(self, job_id: str, kind: str) -> str:
        trigger = uuid.uuid4().hex
        operation = Operation(job_id, kind, delay_ms=self.operation_ms)
        job = self.jobs.get(job_id)
        if kind in ("savepoint", "stop"):
            if job is None or job.state != "RUNNING":
                operation.failure = (f"org.apache.flink.runtime.checkpoint.CheckpointException: "
                                     f"Job {job_id} is not running")
            else:
                operation.location = f"{SAVEPOINT_DIR}/savepoint-{job_id[:6]}-{trigger[:12]}"
        self.operations[trigger] = operation
        return trigger

    def operation(self, trigger: str) -> Operation | None:
        operation = self.operations.get(trigger)
        if operation is not None and operation.done() and operation.kind == "stop":
            job = self.jobs.get(operation.job_id)
            if job is not None and not operation.failure:
                job.end("FINISHED")
                self._changed(job.id)
        return operation
