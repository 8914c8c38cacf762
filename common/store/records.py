"""What flinksched keeps in ZooKeeper, as immutable records built from and to node data.

Keys are camelCase on the wire because the CLI's JSON output is made of the same fields.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from common.errors import StoreError
from common.spec.deployments import DEFAULT_DEPLOYMENT, Deployment

if TYPE_CHECKING:  # the models are loaded when a record's spec is first read (pydantic:
    # a tenth of a second that `flinksched status` and the like do without)
    from common.spec.models import FlinkClusterSpec, FlinkJobSpec


class Phase(StrEnum):
    """Phases a job's status can be in; the CLI colours and the metrics enumerate these. A
    StrEnum: the value is what ZooKeeper and the CLI's JSON carry."""

    PENDING = "Pending"
    SUBMITTING = "Submitting"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    RECOVERING = "Recovering"
    CLUSTER_UNREACHABLE = "ClusterUnreachable"
    # The storage of its checkpoints does not answer: it starts once it does.
    STORAGE_UNREACHABLE = "StorageUnreachable"
    SUBMIT_FAILED = "SubmitFailed"
    CRASH_LOOP = "CrashLoopBackOff"
    FINISHED = "Finished"
    SUSPENDED = "Suspended"
    # Its config is gone: stopped with a savepoint, metadata deleted after grace.
    REMOVED = "Removed"
    # Held until an operator or a new generation resolves it; never retried as it stands:
    NO_RESTORE_POINT = "NoRestorePoint"  # every restore point was rejected; no silent empty state
    RESTORE_INCOMPATIBLE = "RestoreIncompatible"  # Flink cannot map the state to the program
    # Runs the last stable generation's spec after a newer generation failed its trial
    # (`worker.decide.rollback`): the user's spec is not rewritten, that generation not retried.
    ROLLED_BACK = "RolledBack"
    # The rollback's own attempt failed too: held, never tried back and forth.
    ROLLBACK_FAILED = "RollbackFailed"
    # Never written by a worker: what readers show when no worker has owned the job past the
    # grace, whatever its last status says (`common.store.supervision`).
    UNSUPERVISED = "Unsupervised"


HELD_PHASES = (Phase.NO_RESTORE_POINT, Phase.RESTORE_INCOMPATIBLE, Phase.ROLLBACK_FAILED)
# Phases of an attempt that runs as it should (a rolled-back job runs its stable spec).
RUNNING_PHASES = (Phase.RUNNING, Phase.ROLLED_BACK)


class CommandKind(StrEnum):
    """One-shot operator commands a job's owning worker carries out."""

    RESTART = "restart"
    SAVEPOINT = "savepoint"
    ROLLBACK = "rollback"


class SavepointResult(StrEnum):
    """How a requested savepoint ended, as its event's `savepointResult` field says."""

    COMPLETED = "completed"
    FAILED = "failed"
PHASES = tuple(Phase)
MAX_EVENTS = 100  # recent events a job keeps, for describe and events
MAX_REJECTED = 20  # rejected restore points a status remembers, newest last


def decode(data: bytes, what: str) -> dict[str, Any]:
    """JSON object from node data; foreign or corrupt data is a StoreError naming the node."""
    try:
        value = json.loads(data.decode("utf-8")) if data else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{what}: node data is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise StoreError(f"{what}: node data is not a JSON object")
    return value


def number(raw: dict[str, Any], key: str, what: str, default: float | None = None,
           positive: bool = False) -> float:
    """A finite number at `key` of decoded node data (non-negative; `positive`: above zero),
    else a StoreError naming `what` the value came from."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value < 0 or (positive and value == 0):
        raise StoreError(f"{what}: {key} {value!r} is not a "
                         f"{'positive' if positive else 'non-negative'} number")
    return float(value)


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class JobRecord:
    """Desired state of one job, written by the leader."""

    name: str
    spec: dict[str, Any]
    cluster: dict[str, Any]
    generation: int
    spec_hash: str
    source: str
    labels: dict[str, str] = field(default_factory=dict)
    submit_hash: str = ""  # hash of what a running attempt was submitted with (see plan.py)
    commit: str = ""  # git commit of the config checkout this generation came from
    removed_at: float = 0.0  # when its config disappeared; 0 while it is configured
    # The cluster document of the generations before the job moved to `cluster`: its attempt
    # may still run there, to be stopped there before one starts on the new cluster.
    previous_cluster: dict[str, Any] | None = None

    @property
    def removed(self) -> bool:
        return self.removed_at > 0

    @cached_property
    def model(self) -> FlinkJobSpec:
        """The spec as the loader validated it, every default in place: what the worker and
        the master read. A record whose spec no longer validates is unreadable."""
        from common.spec.models import FlinkJobSpec

        try:
            return FlinkJobSpec.model_validate(self.spec)
        except ValueError as exc:
            raise StoreError(f"job {self.name}: unreadable spec ({exc})") from exc

    @cached_property
    def cluster_model(self) -> FlinkClusterSpec:
        """The FlinkCluster's spec as the loader validated it (an unreadable one: StoreError)."""
        from common.spec.models import FlinkClusterSpec

        try:
            return FlinkClusterSpec.model_validate(self.cluster["spec"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"job {self.name}: unreadable cluster ({exc})") from exc

    @property
    def rest_url(self) -> str:
        """The session cluster's REST URL ("" for a cluster of the job's own: each attempt's
        is in the status)."""
        return str(self.cluster["spec"].get("restUrl") or "")

    @property
    def desired_state(self) -> str:
        """running or suspended, as the spec says (read as stored: its defaults are in it)."""
        state = (self.spec.get("job") or {}).get("state", "running")
        return state if state in ("running", "suspended") else "unreadable"

    @property
    def deployment(self) -> Deployment:
        """Where the job runs: on a session cluster, or a cluster of its own per attempt."""
        mode = self.cluster["spec"].get("mode", DEFAULT_DEPLOYMENT)
        return Deployment(mode) if mode in tuple(Deployment) else DEFAULT_DEPLOYMENT

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "cluster": self.cluster,
            "generation": self.generation,
            "specHash": self.spec_hash,
            "source": self.source,
            "labels": self.labels,
            "submitHash": self.submit_hash,
            "commit": self.commit,
            "removedAt": self.removed_at,
            **({"previousCluster": self.previous_cluster} if self.previous_cluster else {}),
        }

    @classmethod
    def from_json_bytes(cls, name: str, data: bytes) -> JobRecord:
        return cls.from_json(name, decode(data, f"job {name}"))

    @classmethod
    def from_json(cls, name: str, value: dict[str, Any]) -> JobRecord:
        try:
            return cls(
                name=name,
                spec=value["spec"],
                cluster=value["cluster"],
                generation=int(value["generation"]),
                spec_hash=str(value["specHash"]),
                source=str(value.get("source", "")),
                labels=dict(value.get("labels", {})),
                submit_hash=str(value.get("submitHash", "")),
                commit=str(value.get("commit", "")),
                removed_at=float(value.get("removedAt", 0.0)),
                previous_cluster=_cluster_document(value.get("previousCluster")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"job {name}: unreadable record ({exc!r})") from exc


@dataclass(frozen=True)
class Checkpoint:
    """A completed checkpoint or savepoint a job can be restored from."""

    path: str
    id: int
    timestamp: int  # milliseconds since the epoch, when it completed
    kind: str = "checkpoint"  # checkpoint | savepoint

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "id": self.id, "timestamp": self.timestamp, "kind": self.kind}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Checkpoint | None:
        if not value:
            return None
        return cls(
            path=str(value["path"]),
            id=int(value["id"]),
            timestamp=int(value["timestamp"]),
            kind=str(value.get("kind", "checkpoint")),
        )

    @classmethod
    def savepoint(cls, path: str, status: JobStatus) -> Checkpoint:
        """A savepoint flinksched just took of the job whose status this is."""
        return cls(path=path, id=len(status.savepoints) + 1,
                   timestamp=int(time.time() * 1000), kind="savepoint")

    @property
    def label(self) -> str:
        return f"{'sp' if self.kind == 'savepoint' else 'chk'}-{self.id}"


@dataclass(frozen=True)
class RejectedRestore:
    """A restore point Flink could not read (or, in a NoRestorePoint reason, one that failed
    the check before use)."""

    path: str
    reason: str
    at: float  # seconds since the epoch

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RejectedRestore:
        return cls(path=str(value["path"]), reason=str(value.get("reason", "")),
                   at=float(value.get("at", 0.0)))


@dataclass(frozen=True)
class StoredState:
    """What a job keeps in storage, as last measured: its attempts' checkpoint directories
    and the savepoints its status names."""

    objects: int
    bytes: int
    attempts: int  # attempts whose checkpoint directory is kept
    savepoints: int
    at: float  # seconds since the epoch
    directory: str = ""  # the checkpoint directory
    held: str = ""  # why earlier attempts' checkpoints are all kept, when they are

    def to_json(self) -> dict[str, Any]:
        return {"objects": self.objects, "bytes": self.bytes, "attempts": self.attempts,
                "savepoints": self.savepoints, "at": self.at, "directory": self.directory,
                "held": self.held}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> StoredState | None:
        if not value:
            return None
        return cls(objects=int(value["objects"]), bytes=int(value["bytes"]),
                   attempts=int(value.get("attempts", 0)),
                   savepoints=int(value.get("savepoints", 0)), at=float(value.get("at", 0.0)),
                   directory=str(value.get("directory", "")), held=str(value.get("held", "")))


class RollbackTrigger(StrEnum):
    """What made a generation on trial roll back."""

    REFUSED = "refused"  # Flink refused its submission
    FAILED = "failed"  # its attempt failed (or Flink restarted it) before it was stable
    TIMEOUT = "timeout"  # not stable within readinessTimeout
    REQUESTED = "requested"  # `flinksched rollback`


@dataclass(frozen=True)
class Rollback:
    """A generation rolled back to the last stable one: kept in the status while the record
    is still that generation (it is not tried again), cleared by the next generation."""

    from_generation: int
    to_generation: int
    trigger: RollbackTrigger
    cause: str
    at: float  # seconds since the epoch
    attempt: int = 0  # the first attempt on the stable spec, once claimed

    @property
    def sentence(self) -> str:
        how = {RollbackTrigger.REFUSED: "Flink refused its submission",
               RollbackTrigger.FAILED: "its attempt failed before it was stable",
               RollbackTrigger.TIMEOUT: "it was not stable in time",
               RollbackTrigger.REQUESTED: "a rollback was requested"}[self.trigger]
        return (f"generation {self.from_generation} rolled back to generation "
                f"{self.to_generation}: {how}: {self.cause}")

    def to_json(self) -> dict[str, Any]:
        return {"fromGeneration": self.from_generation, "toGeneration": self.to_generation,
                "trigger": self.trigger, "cause": self.cause, "at": self.at,
                "attempt": self.attempt}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Rollback | None:
        if not value:
            return None
        return cls(int(value["fromGeneration"]), int(value["toGeneration"]),
                   RollbackTrigger(value["trigger"]), str(value.get("cause", "")),
                   float(value.get("at", 0.0)), int(value.get("attempt", 0)))


@dataclass(frozen=True)
class StableSpec:
    """The last generation of a job whose attempt became stable (RUNNING for stableAfter,
    with a checkpoint of its own where it checkpoints, no failure): what a rollback runs.
    Written by the owning worker beside the record (`/jobs/<name>/stable`)."""

    generation: int
    spec: dict[str, Any]
    cluster: dict[str, Any]
    spec_hash: str
    submit_hash: str
    commit: str
    attempt: int  # the attempt that proved it
    at: float  # seconds since the epoch, when it became stable

    @classmethod
    def of(cls, record: JobRecord, attempt: int, at: float) -> StableSpec:
        return cls(record.generation, record.spec, record.cluster, record.spec_hash,
                   record.submit_hash, record.commit, attempt, at)

    def as_record(self, desired: JobRecord) -> JobRecord:
        """The desired record with this generation's spec: what a rolled-back job runs (its
        removal and labels stay the desired record's)."""
        # The same cluster document object where unchanged: the job's target is kept.
        cluster = desired.cluster if desired.cluster == self.cluster else self.cluster
        return replace(desired, spec=self.spec, cluster=cluster,
                       generation=self.generation, spec_hash=self.spec_hash,
                       submit_hash=self.submit_hash, commit=self.commit, previous_cluster=None)

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "spec": self.spec, "cluster": self.cluster,
                "specHash": self.spec_hash, "submitHash": self.submit_hash,
                "commit": self.commit, "attempt": self.attempt, "at": self.at}

    @classmethod
    def from_json_bytes(cls, name: str, data: bytes) -> StableSpec:
        value = decode(data, f"job {name} stable spec")
        try:
            return cls(int(value["generation"]), dict(value["spec"]), dict(value["cluster"]),
                       str(value["specHash"]), str(value["submitHash"]),
                       str(value.get("commit", "")), int(value.get("attempt", 0)),
                       float(value.get("at", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"job {name}: unreadable stable spec ({exc!r})") from exc


@dataclass(frozen=True)
class JobStatus:
    """Observed state of one job, written only by its owning worker."""

    phase: Phase = Phase.PENDING
    flink_job_id: str = ""
    attempt: int = 0
    observed_generation: int = 0
    last_checkpoint: Checkpoint | None = None
    restarts: int = 0
    restart_times: tuple[float, ...] = ()
    last_failure: str = ""
    reason: str = ""
    since: float = 0.0
    worker: str = ""
    restored_from: str = ""
    submit_pending: bool = False  # attempt claimed; Flink may not have accepted it yet
    stopping: str = ""  # why flinksched is terminating the current attempt, while it does
    flink_restarts: int = 0  # Flink's own restart count of the current attempt
    savepoints: tuple[Checkpoint, ...] = ()  # savepoints flinksched took, oldest first
    submit_hash: str = ""  # the record's submit_hash the current attempt was submitted with
    rejected_restores: tuple[RejectedRestore, ...] = ()  # Flink could not read these; oldest first
    # False once Flink reported a completed checkpoint with no external path: the cluster has
    # no checkpoint directory, so a restart can only use a savepoint (or empty state).
    checkpoints_durable: bool = True
    # last_failure names an attempt whose root exception Flink had not reported yet.
    root_cause_pending: bool = False
    # The REST API (and web UI) of the current attempt's own cluster; "" on a session cluster.
    cluster_url: str = ""
    stored: StoredState | None = None  # what the job keeps in storage, once measured
    # The restore point the current generation's upgrade started from when it replaced the
    # stable generation's attempt: the state a rollback restores (never the trial's own).
    upgrade_point: Checkpoint | None = None
    upgraded_at: float = 0.0  # when that upgrade's first attempt was claimed
    stable_attempt: int = 0  # the newest attempt that became stable
    rollback: Rollback | None = None
    rollbacks: int = 0  # rollbacks this job has made

    @property
    def rejected_paths(self) -> frozenset[str]:
        return frozenset(r.path for r in self.rejected_restores)

    def with_rejected(self, *rejected: RejectedRestore) -> JobStatus:
        """The status with these restore points remembered as unusable (bounded)."""
        known = self.rejected_paths
        added = tuple(r for r in rejected if r.path not in known)
        return replace(self, rejected_restores=(*self.rejected_restores, *added)[-MAX_REJECTED:])

    def with_changes(self, **changes: Any) -> JobStatus:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "flinkJobId": self.flink_job_id,
            "attempt": self.attempt,
            "observedGeneration": self.observed_generation,
            "lastCheckpoint": self.last_checkpoint.to_json() if self.last_checkpoint else None,
            "restarts": self.restarts,
            "restartTimes": list(self.restart_times),
            "lastFailure": self.last_failure,
            "reason": self.reason,
            "since": self.since,
            "worker": self.worker,
            "restoredFrom": self.restored_from,
            "submitPending": self.submit_pending,
            "stopping": self.stopping,
            "flinkRestarts": self.flink_restarts,
            "savepoints": [s.to_json() for s in self.savepoints],
            "submitHash": self.submit_hash,
            "rejectedRestores": [r.to_json() for r in self.rejected_restores],
            "checkpointsDurable": self.checkpoints_durable,
            "rootCausePending": self.root_cause_pending,
            "clusterUrl": self.cluster_url,
            "stored": self.stored.to_json() if self.stored else None,
            "upgradePoint": self.upgrade_point.to_json() if self.upgrade_point else None,
            "upgradedAt": self.upgraded_at,
            "stableAttempt": self.stable_attempt,
            "rollback": self.rollback.to_json() if self.rollback else None,
            "rollbacks": self.rollbacks,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> JobStatus:
        try:
            return cls(
                phase=Phase(value.get("phase", Phase.PENDING)),
                flink_job_id=str(value.get("flinkJobId", "")),
                attempt=int(value.get("attempt", 0)),
                observed_generation=int(value.get("observedGeneration", 0)),
                last_checkpoint=Checkpoint.from_json(value.get("lastCheckpoint")),
                restarts=int(value.get("restarts", 0)),
                restart_times=tuple(float(t) for t in value.get("restartTimes", ())),
                last_failure=str(value.get("lastFailure", "")),
                reason=str(value.get("reason", "")),
                since=float(value.get("since", 0.0)),
                worker=str(value.get("worker", "")),
                restored_from=str(value.get("restoredFrom", "")),
                submit_pending=bool(value.get("submitPending", False)),
                stopping=str(value.get("stopping", "")),
                flink_restarts=int(value.get("flinkRestarts", 0)),
                savepoints=tuple(
                    c for c in map(Checkpoint.from_json, value.get("savepoints", ())) if c
                ),
                submit_hash=str(value.get("submitHash", "")),
                rejected_restores=tuple(
                    RejectedRestore.from_json(r) for r in value.get("rejectedRestores", ())),
                checkpoints_durable=bool(value.get("checkpointsDurable", True)),
                root_cause_pending=bool(value.get("rootCausePending", False)),
                # Shown as a link and asked by `dev up`: a URL or nothing.
                cluster_url=_http_url(value.get("clusterUrl")),
                stored=StoredState.from_json(value.get("stored")),
                upgrade_point=Checkpoint.from_json(value.get("upgradePoint")),
                upgraded_at=float(value.get("upgradedAt", 0.0)),
                stable_attempt=int(value.get("stableAttempt", 0)),
                rollback=Rollback.from_json(value.get("rollback")),
                rollbacks=int(value.get("rollbacks", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"unreadable job status ({exc!r})") from exc


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    slots: int
    version: str
    started: float
    metrics_port: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "pid": self.pid,
            "slots": self.slots,
            "version": self.version,
            "started": self.started,
            "metricsPort": self.metrics_port,
        }

    @classmethod
    def from_json(cls, worker_id: str, value: dict[str, Any]) -> WorkerInfo:
        return cls(
            id=worker_id,
            host=str(value.get("host", "")),
            pid=int(value.get("pid", 0)),
            slots=int(value.get("slots", 1)),
            version=str(value.get("version", "")),
            started=float(value.get("started", 0.0)),
            metrics_port=int(value.get("metricsPort", 0)),
        )


@dataclass(frozen=True)
class Fence:
    """A node whose existence, at this version and in this session, entitles a write."""

    path: str
    version: int
    session_id: int
    holder: str = ""
    epoch: int = 0


@dataclass(frozen=True)
class Event:
    timestamp: float
    source: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.timestamp, "source": self.source, "message": self.message, **self.extra}


def _http_url(value: object) -> str:
    text = str(value or "")
    return text if text.startswith(("http://", "https://")) else ""


def _cluster_document(value: object) -> dict[str, Any] | None:
    """A FlinkCluster document as the master copies it (metadata and a spec that validates),
    or None: a cluster the job left that cannot be read is no place to act on."""
    if not (isinstance(value, dict) and isinstance(value.get("spec"), dict)
            and isinstance(value.get("metadata"), dict)):
        return None
    from common.spec.models import FlinkClusterSpec

    try:
        FlinkClusterSpec.model_validate(value["spec"])
    except ValueError:
        return None
    return value
