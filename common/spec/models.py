"""The job spec: `FlinkJob` and `FlinkCluster` documents, as users write them in YAML.

Field names follow the Flink Kubernetes Operator's FlinkDeployment where they mean the same.
The models are strict (unknown fields are errors) and frozen; durations are seconds as floats.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from common.durations import parse_duration, parse_flink_duration
from common.flink.versions import CHECKPOINT_INTERVAL
from common.spec.deployments import DEFAULT_DEPLOYMENT, DEPLOYMENTS, Deployment, DeploymentRules
from common.spec.programs import KINDS, JarProgram, Program, PythonProgram, SqlProgram
from common.spec.schedules import schedule_trigger

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

Duration = Annotated[float, BeforeValidator(parse_duration)]
JAR_SCHEMES = ("file://", "http://", "https://", "local://", "s3://", "s3a://", "s3p://",
               "gs://", "az://", "abfs://", "abfss://")
UpgradeMode = Literal["savepoint", "last-state", "stateless"]
DesiredState = Literal["running", "suspended"]
PYTHON_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(_Strict):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not re.fullmatch(DNS1123_LABEL, value):
            raise ValueError(
                f"{value!r} is not a DNS-1123 label: at most 63 lowercase letters, digits "
                "and '-', starting and ending with a letter or digit"
            )
        return value


def _program_uri(field: str, value: str) -> str:
    """A program's file: a path or a URI of a scheme flinksched or Flink can read."""
    if not value.strip():
        raise ValueError(f"{field} is empty")
    if "://" in value and not value.startswith(JAR_SCHEMES):
        raise ValueError(f"{field} must be file://, http(s)://, object storage (s3://, "
                         f"gs://, az://), local:// (in an application cluster's image) or "
                         f"a path, got {value!r}")
    return value


def _kind_set(data: dict[str, Any]) -> str | None:
    """The kind of program the fields validated so far name, if any."""
    return next((kind for kind, fields in KINDS.items()
                 if any(data.get(field) is not None for field in fields)), None)


class JobSection(_Strict):
    # What the job runs: the fields of exactly one kind (`common.spec.programs`). The order
    # matters: each field's check sees the ones before it.
    jarURI: str | None = None
    pyFile: str | None = None
    pyModule: str | None = Field(default=None, pattern=PYTHON_MODULE)
    sql: str | None = None
    sqlFile: str | None = None
    entryClass: str | None = None
    jarSHA256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    pyFiles: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    parallelism: int | None = Field(default=None, ge=1, strict=True)  # `true` is no number
    upgradeMode: UpgradeMode = "savepoint"
    state: DesiredState = "running"
    allowNonRestoredState: bool = False
    initialSavepointPath: str | None = None

    @property
    def program(self) -> Program:
        """What the job runs, whatever its kind (`common.spec.programs`)."""
        if self.jarURI is not None:
            return JarProgram(self.jarURI, self.entryClass, self.jarSHA256)
        if self.pyFile is not None or self.pyModule is not None:
            return PythonProgram(self.pyFile, self.pyModule, tuple(self.pyFiles))
        return SqlProgram(self.sql, self.sqlFile)

    @property
    def kind(self) -> str:
        """"jar", "Python" or "SQL"."""
        return _kind_set(self.__dict__) or "jar"

    @field_validator("jarURI", "pyFile", "sqlFile")
    @classmethod
    def _known_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _program_uri(str(info.field_name), value)

    @field_validator("pyFile")
    @classmethod
    def _python_file(cls, value: str | None) -> str | None:
        if value is not None and not value.rstrip("/").endswith(".py"):
            raise ValueError(f"pyFile names the .py file Flink runs, got {value!r} (a module "
                             "on the Python path is pyModule; archives are pyFiles)")
        return value

    @field_validator("pyFile", "pyModule", "sql", "sqlFile")
    @classmethod
    def _one_program(cls, value: str | None, info: ValidationInfo) -> str | None:
        field = str(info.field_name)
        if value is None:
            return value
        if field == "sql" and not value.strip():
            raise ValueError("sql is empty: give the script's statements")
        earlier = _kind_set(info.data)
        mine = next(kind for kind, fields in KINDS.items() if field in fields)
        if earlier is not None and earlier != mine:
            raise ValueError(f"the job already runs a {earlier} program "
                             f"({' or '.join(KINDS[earlier])}): a job runs exactly one of "
                             "a jar (jarURI), Python (pyFile or pyModule) or SQL (sql or "
                             "sqlFile)")
        if earlier == mine:
            raise ValueError(f"give one of {' or '.join(KINDS[mine])}, not both")
        return value

    @field_validator("entryClass", "jarSHA256")
    @classmethod
    def _jar_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = _kind_set(info.data)
        if value is not None and kind not in (None, "jar"):
            raise ValueError(f"{info.field_name} applies to a jar; this job runs a {kind} "
                             "program")
        return value

    @field_validator("pyFiles")
    @classmethod
    def _python_only(cls, value: list[str], info: ValidationInfo) -> list[str]:
        kind = _kind_set(info.data)
        if value and kind not in (None, "Python"):
            raise ValueError(f"pyFiles is the Python path of a Python program; this job runs "
                             f"a {kind} program")
        return [_program_uri("pyFiles", item) for item in value]

    @field_validator("args")
    @classmethod
    def _not_for_sql(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value and _kind_set(info.data) == "SQL":
            raise ValueError("args are a jar's or a Python program's; a SQL script takes none")
        return value

    @model_validator(mode="after")
    def _names_a_program(self) -> JobSection:
        if _kind_set(self.__dict__) is None:
            raise ValueError("the job names no program: give jarURI (a jar), pyFile or "
                             "pyModule (Python), or sql or sqlFile (SQL)")
        return self


class Backoff(_Strict):
    initial: Duration = 0.0
    max: Duration = 300.0


class RestartPolicy(_Strict):
    maxRestarts: int = Field(default=10, ge=0)
    window: Duration = 600.0
    backoff: Backoff = Field(default_factory=Backoff)


class Savepoints(_Strict):
    schedule: str | None = None
    retain: int = Field(default=5, ge=1)

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value is not None:
            schedule_trigger(value)
        return value


class Checkpoints(_Strict):
    # Earlier attempts whose checkpoint directories are kept, beyond the current attempt's,
    # once that has completed a checkpoint of its own: the fallback should its checkpoints
    # prove unreadable. Older ones are deleted.
    retainAttempts: int = Field(default=1, ge=0)


def _stringify_config(value: Any) -> Any:
    """Flink configuration values travel as strings; YAML turns `true` and `4` into other types."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if isinstance(item, bool):
            out[str(key)] = "true" if item else "false"
        elif isinstance(item, int | float | str):
            out[str(key)] = str(item)
        else:
            out[str(key)] = item  # left for the str check to reject, with its path
    return out


class RollbackPolicy(_Strict):
    """When a new generation that does not prove stable is rolled back to the last stable one.
    A generation is stable once its attempt has been RUNNING for `stableAfter` with a
    completed checkpoint of its own (where it checkpoints) and no failure; one refused by
    Flink, failing before that, or not stable within `readinessTimeout`, is rolled back."""

    enabled: bool | None = None  # default: on for savepoint and last-state jobs
    stableAfter: Duration = 60.0
    readinessTimeout: Duration = 300.0

    @model_validator(mode="after")
    def _timeout_after_stability(self) -> RollbackPolicy:
        if self.readinessTimeout <= self.stableAfter:
            raise ValueError(f"readinessTimeout ({self.readinessTimeout:g}s) must be longer "
                             f"than stableAfter ({self.stableAfter:g}s)")
        return self


class Alerts(_Strict):
    checkpointStaleAfter: Duration = 600.0  # FlinkschedCheckpointStale past this age


class FlinkJobSpec(_Strict):
    cluster: str = "default"
    job: JobSection
    flinkConfiguration: Annotated[dict[str, str], BeforeValidator(_stringify_config)] = Field(
        default_factory=dict
    )
    restartPolicy: RestartPolicy = Field(default_factory=RestartPolicy)
    savepoints: Savepoints = Field(default_factory=Savepoints)
    checkpoints: Checkpoints = Field(default_factory=Checkpoints)
    pollInterval: Duration = 1.0
    alerts: Alerts = Field(default_factory=Alerts)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)

    @property
    def rolls_back(self) -> bool:
        """A broken upgrade of this job is rolled back (stateless jobs only when asked)."""
        enabled = self.rollback.enabled
        return enabled if enabled is not None else self.job.upgradeMode != "stateless"

    @property
    def checkpoint_interval(self) -> float | None:
        """Seconds between the job's checkpoints, when its configuration sets them (in
        Flink's spelling: `10min` as well as `10m`)."""
        configured = CHECKPOINT_INTERVAL.read(self.flinkConfiguration)
        try:
            return parse_flink_duration(configured) if configured is not None else None
        except ValueError:
            return None


class FlinkJob(_Strict):
    apiVersion: Literal["flinksched/v1"]
    kind: Literal["FlinkJob"]
    metadata: Metadata
    spec: FlinkJobSpec

    @property
    def name(self) -> str:
        return self.metadata.name


M = TypeVar("M", bound=BaseModel)


def _exactly_one(model: M, first: str, second: str) -> M:
    if (getattr(model, first) is None) == (getattr(model, second) is None):
        raise ValueError(f"give exactly one of {first} or {second}")
    return model


class SecretRef(_Strict):
    """Where a secret's value is read from when it is used: a file (a mounted Kubernetes
    Secret) or an environment variable. The value itself is never written in the YAML, so it
    never reaches ZooKeeper, events or logs."""

    file: str | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        return _exactly_one(self, "file", "env")


class BasicAuth(_Strict):
    username: str
    password: SecretRef


class RestAuth(_Strict):
    basic: BasicAuth | None = None
    bearer: SecretRef | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RestAuth:
        return _exactly_one(self, "basic", "bearer")


class RestTls(_Strict):
    caFile: str | None = None  # PEM bundle of the CAs trusted for the REST endpoint


MemorySize = Annotated[str, Field(pattern=r"(?i)^[0-9]+ *(b|k|kb|m|mb|g|gb|t|tb)?$")]
FlinkLine = Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+$")]  # "1.20", "2.3"


class Resource(_Strict):
    """A Flink process's size: its total process memory (Flink's syntax: 1024m, 2g) and, on
    Kubernetes, the CPUs its pod requests."""

    memory: MemorySize = "1024m"
    cpu: float = Field(default=1.0, gt=0)


class JobManagerSpec(_Strict):
    resource: Resource = Field(default_factory=Resource)
    podTemplate: dict[str, Any] | None = None  # Kubernetes: merged into the JobManager pod


class TaskManagerSpec(_Strict):
    resource: Resource = Field(default_factory=lambda: Resource(memory="1728m"))
    replicas: int = Field(default=1, ge=1, strict=True)
    podTemplate: dict[str, Any] | None = None


class FlinkClusterSpec(_Strict):
    """A shared session cluster flinksched reaches at `restUrl`, or (`mode: application`) the
    template of the cluster each job naming it gets of its own: a JobManager in application
    mode and its TaskManagers, started for each attempt and torn down with it."""

    mode: Deployment = DEFAULT_DEPLOYMENT
    restUrl: str | None = Field(default=None, pattern=r"^https?://")
    tls: RestTls | None = None
    auth: RestAuth | None = None
    flinkVersion: FlinkLine | None = None  # checked against the distribution or image
    image: str | None = None  # Kubernetes: the Flink image (with the job's jar, or fetching it)
    serviceAccount: str | None = None  # Kubernetes: the Flink pods' service account
    jobManager: JobManagerSpec = Field(default_factory=JobManagerSpec)
    taskManager: TaskManagerSpec = Field(default_factory=TaskManagerSpec)
    podTemplate: dict[str, Any] | None = None  # Kubernetes: merged into both kinds of pod
    flinkConfiguration: Annotated[dict[str, str], BeforeValidator(_stringify_config)] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _fields_of_its_mode(self) -> FlinkClusterSpec:
        fields = type(self).model_fields
        others = [name for kind, rules in DEPLOYMENTS.items() if kind != self.mode
                  for name in rules.fields]
        wrong = [name for name in others
                 if getattr(self, name) != fields[name].get_default(call_default_factory=True)]
        if any(getattr(self, name) is None for name in self.rules.required):
            raise ValueError(self.rules.missing)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: {DEPLOYMENTS[self.mode].refusal}")
        return self

    @property
    def rules(self) -> DeploymentRules:
        return DEPLOYMENTS[self.mode]


class FlinkCluster(_Strict):
    apiVersion: Literal["flinksched/v1"]
    kind: Literal["FlinkCluster"]
    metadata: Metadata
    spec: FlinkClusterSpec

    @property
    def name(self) -> str:
        return self.metadata.name


def spec_hash(document: dict[str, Any]) -> str:
    """A stable hash of a JSON-able document: equal specs hash equal, whatever the key order."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
