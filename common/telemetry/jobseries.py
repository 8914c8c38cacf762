"""The leader's per-job series, encoded in Prometheus' text format once per export pass.

With 5,000 jobs the per-job families are 55,000 lines (4.4 MB; two more lines for each job
whose storage was measured). Encoded on every scrape,
they took a scrape 0.7 s in steady state and up to 6.6 s while the jobs started (the scrape
shares the interpreter lock with the master's sync and assignment); a scrape past 10 s,
Prometheus' default timeout, loses every per-job series. The export pass encodes them
instead, and a scrape sends the bytes of the last pass. A job whose sample did not change
since the last pass keeps its lines; only changed jobs are encoded again (in steady state
those whose checkpoint advanced).

The text is what `prometheus_client.generate_latest` writes for the same families (a unit
test holds the two to it), so nothing downstream can tell the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from common.store.records import RUNNING_PHASES, Phase

# the library's own number format (1.0, 1.7e+09, +Inf), typed
_number: Callable[[float], str] = floatToGoString


@dataclass(frozen=True)
class JobSample:
    """One job as the leader last read it from ZooKeeper."""

    name: str
    cluster: str
    phase: Phase
    desired_running: bool
    restarts: int
    flink_restarts: int
    last_checkpoint: float | None  # seconds since the epoch
    stale_after: float
    generation: int
    observed_generation: int
    config_error: bool
    checkpoints_durable: bool = True
    deployment: str = "session"  # where it runs: a session cluster, or one of its own
    supervised: bool = True  # a worker owns it, or did within the grace
    stored_bytes: int | None = None  # what it keeps in storage, once measured
    stored_objects: int | None = None
    rollbacks: int = 0  # broken upgrades rolled back
    rolled_back_from: int = 0  # the generation rolled back from, while the job is


@dataclass(frozen=True)
class Family:
    """One per-job metric family: its exposed name, type, help and the job's value (None:
    no sample for this job)."""

    name: str
    kind: str  # "gauge" or "counter" (exposed with `_total`)
    help: str
    value: Callable[[JobSample], float | None]
    # One more label and its value for the job (the job's phase, its deployment kind).
    extra: Callable[[JobSample], tuple[str, str]] | None = None

    @property
    def exposed(self) -> str:
        return f"{self.name}_total" if self.kind == "counter" else self.name

    @property
    def header(self) -> bytes:
        text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.exposed} {text}\n# TYPE {self.exposed} {self.kind}\n".encode()


def _job(name: str, help_text: str, value: Callable[[JobSample], float | None],
         kind: str = "gauge") -> Family:
    return Family(f"flinksched_job_{name}", kind, help_text, value)


FAMILIES: tuple[Family, ...] = (
    _job("up", "1 while the job's current attempt is RUNNING (on its stable spec, when rolled "
         "back) and a worker supervises it",
         lambda j: 1 if j.phase in RUNNING_PHASES and j.supervised else 0),
    _job("supervised", "1 while a worker owns the job (0: none has for longer than a session "
         "timeout; its status is not current and a failure would not be restarted)",
         lambda j: 1 if j.supervised else 0),
    _job("desired_running", "1 when the job should run (not suspended, removed)",
         lambda j: 1 if j.desired_running else 0),
    Family("flinksched_job_phase", "gauge",
           "1 for the job's current phase (the only phase exported for it)",
           lambda j: 1, extra=lambda j: ("phase", j.phase)),
    Family("flinksched_job_deployment", "gauge",
           "1 for where the job runs: deployment=\"application\" (a cluster of its own for "
           "each attempt) or \"session\" (a shared session cluster)",
           lambda j: 1, extra=lambda j: ("deployment", j.deployment)),
    _job("restarts", "Restarts flinksched made of the job", lambda j: j.restarts, "counter"),
    _job("flink_restarts", "Flink's own restarts of the current attempt",
         lambda j: j.flink_restarts),
    _job("last_checkpoint_timestamp_seconds",
         "Completion time of the newest checkpoint recorded for the job",
         lambda j: j.last_checkpoint or None),
    _job("checkpoint_stale_after_seconds",
         "Checkpoint age past which the job alerts (spec.alerts)", lambda j: j.stale_after),
    _job("spec_generation", "Desired generation", lambda j: j.generation),
    _job("observed_generation", "Generation the running attempt carries",
         lambda j: j.observed_generation),
    _job("rollbacks", "Broken upgrades of the job rolled back to its last stable generation",
         lambda j: j.rollbacks, "counter"),
    _job("rolled_back_from_generation", "The generation rolled back from while the job runs "
         "its last stable generation's spec (0: not rolled back)",
         lambda j: j.rolled_back_from),
    _job("config_error", "1 while the job's config file has a problem",
         lambda j: 1 if j.config_error else 0),
    _job("checkpoints_durable", "0 while Flink keeps the job's checkpoints only in memory "
         "(no external path): a restart can use only a savepoint",
         lambda j: 1 if j.checkpoints_durable else 0),
    _job("stored_bytes", "Bytes the job keeps in storage: its attempts' checkpoint "
         "directories and its savepoints, as last measured", lambda j: j.stored_bytes),
    _job("stored_objects", "Objects (files) the job keeps in storage, as last measured",
         lambda j: j.stored_objects),
)


def _label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def job_lines(job: JobSample) -> tuple[bytes, ...]:
    """The job's line in each family, in FAMILIES' order (b"" where it has no sample)."""
    lines = []
    for family in FAMILIES:
        value = family.value(job)
        if value is None:
            lines.append(b"")
            continue
        pairs = [("cluster", job.cluster), ("job_name", job.name)]
        if family.extra is not None:
            pairs.append(family.extra(job))
        labels = ",".join(f'{name}="{_label(text)}"' for name, text in sorted(pairs))
        lines.append(f"{family.exposed}{{{labels}}} {_number(value)}\n".encode())
    return tuple(lines)


class JobSeries:
    """Encodes the per-job families, keeping each job's lines until its sample changes."""

    def __init__(self) -> None:
        self._lines: dict[JobSample, tuple[bytes, ...]] = {}
        self.encoded = 0  # jobs encoded so far (the rest were reused)

    def render(self, jobs: Iterable[JobSample]) -> bytes:
        """Every family with one line per job, in the order of `jobs`."""
        known = self._lines
        lines: dict[JobSample, tuple[bytes, ...]] = {}
        for job in jobs:
            found = known.get(job)
            if found is None:
                found = job_lines(job)
                self.encoded += 1
            lines[job] = found
        self._lines = lines  # jobs gone or changed are forgotten
        parts: list[bytes] = []
        for index, family in enumerate(FAMILIES):
            parts.append(family.header)
            parts.extend(each[index] for each in lines.values())
        return b"".join(parts)
