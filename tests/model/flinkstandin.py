"""A Flink session cluster in-process, as far as one job's supervisor can tell: a deployment
target for the model-based test. It keeps every submission so that the test can check the
correctness rules against what Flink was actually asked to do.

It behaves as Flink 2.x does where that matters: a run request whose restore point cannot be
read is refused synchronously and the attempt is also left FAILED (1.x leaves none:
`keeps_refused`); a cluster without a
checkpoint directory reports `<checkpoint-not-externally-addressable>` for its checkpoints; a
JobManager without HA forgets its attempts; a checkpoint deleted from storage cannot be
restored from (its statistics still name it).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from common.errors import FlinkRequestFailed, FlinkUnreachable, JobAlreadySubmitted
from common.flink.jobids import name_prefix
from common.flink.versions import FlinkVersion
from common.objstore.storage import Entry, Storage
from common.store.records import JobRecord

PLACEHOLDER = "<checkpoint-not-externally-addressable>"
UNREADABLE = ("java.io.FileNotFoundException: Cannot find meta data file '_metadata' in "
              "directory '{path}'")


class CheckpointStorage(Storage):
    """The stand-in's checkpoint storage as a worker reads it: every completed checkpoint has
    its `_metadata` object (one Flink cannot read is corrupt there, not missing)."""

    def __init__(self, completed: dict[str, int]) -> None:
        super().__init__()
        self.completed = completed  # the stand-in's own: path -> completion time (ms)
        self.savepoints: set[str] = set()
        self.deleted: list[str] = []  # directories deleted, in order
        # Asked before each deletion: the model checks it against what the job needs then.
        self.before_delete: Callable[[str], None] = lambda directory: None

    def exists(self, uri: str) -> bool:
        point = uri.rstrip("/").removesuffix("/_metadata")
        return point in self.completed or point in self.savepoints

    def list(self, prefix: str) -> list[Entry]:
        return [Entry(f"{path}/_metadata", 1, at / 1000) for path, at in self.completed.items()
                if f"{path}/_metadata".startswith(prefix)]

    def delete_tree(self, directory: str) -> tuple[int, int]:
        self.before_delete(directory.rstrip("/"))
        gone = [p for p in self.completed if p.startswith(directory.rstrip("/") + "/")]
        self.deleted.append(directory.rstrip("/"))
        for path in gone:
            del self.completed[path]
        return len(gone), len(gone)


MISSING = "java.lang.ClassNotFoundException: dev.example.Missing"
FAILS = "java.lang.IllegalStateException: fails on every record"


def broken_program(record: JobRecord) -> str:
    """How a generation's program is broken, as its args say (`--broken refuse|fail`)."""
    args = list(record.model.job.args)
    return args[args.index("--broken") + 1] if "--broken" in args else ""


@dataclass
class Attempt:
    state: str
    restored_from: str
    checkpoints: list[str] = field(default_factory=list)  # paths, oldest first
    cause: str = ""


class FlinkStandIn:
    rest_url = "http://flink-stand-in"
    attempt_url = ""  # a shared cluster's; a stand-in for a cluster of the job's own sets it

    def __init__(self, name: str, now: Callable[[], float]) -> None:
        self.prefix = name_prefix(name)
        self.now = now  # seconds since the epoch, the model's clock
        self.attempts_by_id: dict[str, Attempt] = {}
        self.submissions: list[tuple[str, str]] = []  # (job id, restore path) accepted or not
        self.submitted_hashes: dict[str, str] = {}  # job id -> the record's submit hash
        self.unreadable: set[str] = set()  # restore points whose metadata is gone
        self.durable = True  # False: the cluster has no checkpoint directory
        self.keeps_refused = True  # False: as Flink 1.x, a refused submission leaves no job
        self.reachable = True
        self.cancels = 0  # cancel and stop requests
        self.stopped: set[str] = set()  # attempts that FINISHED by a stop with a savepoint
        self.refused: set[str] = set()  # restore points Flink refused to read
        self.violations: list[str] = []  # correctness rules broken by a request
        self._triggers: dict[str, tuple[str, str]] = {}  # trigger -> (job id, savepoint)
        self._sequence = itertools.count(1)
        self._completed: dict[str, int] = {}  # checkpoint path -> completion time (ms)
        self._acked: dict[str, int] = {}  # the same, as Flink's statistics keep it after a delete
        self.storage = CheckpointStorage(self._completed)

    # -- what the model does to Flink --------------------------------------------------------
    def live(self) -> list[str]:
        return [j for j, a in self.attempts_by_id.items()
                if a.state not in ("FAILED", "CANCELED", "FINISHED")]

    def checkpoint(self) -> str | None:
        """The running attempt completes a checkpoint; its path, or None if nothing runs."""
        for job_id in self.live():
            attempt = self.attempts_by_id[job_id]
            if attempt.state == "RUNNING":
                path = f"s3://ckpt/{job_id}/chk-{next(self._sequence)}"
                attempt.checkpoints.append(path)
                self._completed[path] = self._acked[path] = int(self.now() * 1000)
                return path
        return None

    def written_by(self, path: str) -> str:
        """The attempt (job id) that wrote a checkpoint or savepoint, "" if unknown."""
        for trigger_job, savepoint in self._triggers.values():
            if savepoint == path:
                return trigger_job
        parts = path.split("/")
        return parts[3] if path.startswith("s3://ckpt/") and len(parts) > 3 else ""

    def fail(self, cause: str = "java.lang.RuntimeException: boom") -> None:
        for job_id in self.live():
            self.attempts_by_id[job_id].state = "FAILED"
            self.attempts_by_id[job_id].cause = cause

    def forget(self) -> None:
        """The JobManager restarted without HA: it knows none of its attempts."""
        self.attempts_by_id.clear()

    def forget_finished(self) -> None:
        """Flink's memory of ended attempts expired (jobstore.expiration-time)."""
        for job_id in [j for j in self.attempts_by_id if j not in self.live()]:
            del self.attempts_by_id[job_id]

    # -- the deployment target ---------------------------------------------------------------
    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        yield

    def _reach(self) -> None:
        if not self.reachable:
            raise FlinkUnreachable("stand-in: connection refused")

    def state(self, job_id: str, *, listable: bool, since: float) -> tuple[str | None, bool]:
        self._reach()
        attempt = self.attempts_by_id.get(job_id)
        return (attempt.state if attempt else None), False

    def watch(self, job_id: str, wake: Callable[[], None]) -> None:
        pass

    def unwatch(self) -> None:
        pass

    def attempts(self, since: float = float("-inf")) -> dict[str, str]:
        self._reach()
        return {j: a.state for j, a in self.attempts_by_id.items() if j.startswith(self.prefix)}

    def submit(self, record: JobRecord, job_id: str, restore_path: str) -> None:
        self._reach()
        self.submissions.append((job_id, restore_path))
        self.submitted_hashes.setdefault(job_id, record.submit_hash)  # a resubmission adopts
        known = self.attempts_by_id.get(job_id)
        if known is not None and known.state in ("FAILED", "CANCELED", "FINISHED"):
            self.violations.append(f"attempt id {job_id} reused: Flink knows it {known.state}")
        if restore_path == PLACEHOLDER or restore_path.startswith("<"):
            self.violations.append(f"{job_id} submitted from the placeholder {restore_path}")
        if restore_path in self.refused:
            self.violations.append(f"{job_id} submitted from {restore_path}, which Flink "
                                   "refused to read before")
        if job_id in self.attempts_by_id:
            raise JobAlreadySubmitted(f"job {job_id} has already been submitted")
        deleted = restore_path in self._acked and restore_path not in self._completed
        if restore_path in self.unreadable or deleted:
            self.refused.add(restore_path)
            cause = UNREADABLE.format(path=restore_path)
            if self.keeps_refused:
                self.attempts_by_id[job_id] = Attempt("FAILED", restore_path, cause=cause)
            raise FlinkRequestFailed(400, cause, "/jars/x/run")
        broken = broken_program(record)
        if broken == "refuse":  # its entry class does not exist
            if self.keeps_refused:
                self.attempts_by_id[job_id] = Attempt("FAILED", restore_path, cause=MISSING)
            raise FlinkRequestFailed(400, MISSING, "/jars/x/run")
        if broken == "fail":  # it fails on its first record
            self.attempts_by_id[job_id] = Attempt("FAILED", restore_path, cause=FAILS)
            return
        self.attempts_by_id[job_id] = Attempt("RUNNING", restore_path)

    def cancel(self, job_id: str) -> None:
        self._reach()
        self.cancels += 1
        if job_id in self.live():
            self.attempts_by_id[job_id].state = "CANCELED"

    def release(self) -> None:
        """A session cluster's: nothing of the job's alone."""

    def stop_with_savepoint(self, job_id: str, directory: str | None = None) -> str:
        self._reach()
        self.cancels += 1
        trigger = f"t{next(self._sequence)}"
        savepoint = f"s3://sp/savepoint-{trigger}"
        self._triggers[trigger] = (job_id, savepoint)
        self.storage.savepoints.add(savepoint)
        if job_id in self.live():
            self.attempts_by_id[job_id].state = "FINISHED"
            self.stopped.add(job_id)
        return trigger

    def trigger_savepoint(self, job_id: str, directory: str | None = None) -> str:
        self._reach()
        trigger = f"t{next(self._sequence)}"
        self._triggers[trigger] = (job_id, f"s3://sp/savepoint-{trigger}")
        self.storage.savepoints.add(f"s3://sp/savepoint-{trigger}")
        return trigger

    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, str]:
        self._reach()
        if trigger_id not in self._triggers:
            raise FlinkRequestFailed(404, "unknown trigger", "/savepoints")
        return "COMPLETED", self._triggers[trigger_id][1]

    def dispose_savepoint(self, path: str) -> str:
        return "disposed"

    def checkpoints(self, job_id: str) -> dict[str, Any] | None:
        self._reach()
        attempt = self.attempts_by_id.get(job_id)
        if attempt is None:
            return None
        latest: dict[str, Any] = {"completed": None, "savepoint": None, "restored": None}
        if attempt.checkpoints:
            path = attempt.checkpoints[-1]
            number = int(path.rsplit("-", 1)[-1])
            latest["completed"] = {"id": number, "latest_ack_timestamp": self._acked[path],
                                   "external_path": path if self.durable else PLACEHOLDER}
        return {"latest": latest}

    def root_exception(self, job_id: str) -> str:
        self._reach()
        attempt = self.attempts_by_id.get(job_id)
        return attempt.cause if attempt else ""

    def restart_count(self, job_id: str) -> int | None:
        self._reach()
        return 0 if job_id in self.attempts_by_id else None

    def config(self) -> dict[str, str]:
        self._reach()
        return {"execution.checkpointing.dir": "s3://ckpt"} if self.durable else {}

    def version(self) -> FlinkVersion | None:
        self._reach()
        return FlinkVersion(2, 3, 0)
