"""One owned job's state machine against Flink: submit, watch, track checkpoints, restart.

Each cycle reads one snapshot (desired record, status, the attempt's Flink state), takes one
decision and returns it as a sentence, which is logged when it changes and asserted in tests.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kazoo.exceptions import KazooException

from common.errors import (
    ConflictError,
    FencedError,
    FlinkRequestFailed,
    FlinkschedError,
    FlinkUnreachable,
    JarMissing,
    JobAlreadySubmitted,
    StoreError,
)
from common.flink import FlinkClient
from common.jobids import flink_job_id, name_prefix
from common.metrics import RECOVERY_SECONDS
from common.records import (
    CLUSTER_UNREACHABLE,
    CRASH_LOOP,
    FINISHED,
    RECOVERING,
    RESTARTING,
    RUNNING,
    SUBMIT_FAILED,
    SUBMITTING,
    Checkpoint,
    Fence,
    JobRecord,
    JobStatus,
)
from common.store import Store
from worker.clients import FlinkClients
from worker.fencing import ConnectionGuard
from worker.jars import JarCache, JarError
from worker.policy import backoff_delay, recent_restarts
from worker.restore import checkpoint_dir, from_flink_stats, newest, retained_on_disk

logger = logging.getLogger(__name__)

MAX_UNREACHABLE_WAIT = 5.0
# Flink serves exception history from a cache (web.refresh-interval); it can lag the failure.
ROOT_CAUSE_PENDING = "root exception not reported by Flink yet"


class JobSupervisor:
    def __init__(
        self,
        store: Store,
        name: str,
        owner: Fence,
        guard: ConnectionGuard,
        jars: JarCache,
        clients: FlinkClients,
    ) -> None:
        self.store = store
        self.name = name
        self.owner = owner
        self.guard = guard
        self.jars = jars
        self.clients = clients
        self.source = f"worker {owner.holder}"
        self.version = -1
        self.current = JobStatus()
        self.poll_interval = 1.0
        self.failure_seen: float | None = None  # monotonic time the current outage was noticed
        self.last_message = ""
        self.fenced = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"job-{name}", daemon=True)

    # -- thread --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def run(self) -> None:
        wait = self.poll_interval
        while not self._stop.is_set():
            if not self.guard.can_act():
                self._stop.wait(0.1)
                continue
            try:
                message = self.cycle()
            except FencedError as exc:
                logger.warning("job %s: stopping, ownership lost: %s", self.name, exc)
                self.fenced = True
                return
            except ConflictError as exc:
                message = f"status changed concurrently, re-reading: {exc}"
            except (StoreError, KazooException) as exc:
                message = f"ZooKeeper error: {exc!r}"
            except FlinkschedError as exc:
                message = f"error: {exc}"
            except Exception:
                logger.exception("job %s: unexpected error in cycle", self.name)
                message = "unexpected error (see the log)"
            if message != self.last_message:
                logger.info("job %s: %s", self.name, message)
                self.last_message = message
            unreachable = message.startswith("cluster unreachable")
            wait = min(MAX_UNREACHABLE_WAIT, wait * 2) if unreachable else self.poll_interval
            self._stop.wait(wait)

    # -- one cycle -----------------------------------------------------------------------
    def cycle(self) -> str:
        record = self.store.job(self.name)
        if record is None:
            self._stop.set()
            return "job no longer exists in ZooKeeper"
        self.poll_interval = float(record.spec.get("pollInterval", 1.0))
        status, self.version = self.store.status(self.name)
        self.current = status
        client = self.clients.get(record.rest_url)
        if status.attempt == 0:
            restore = self._first_restore_point(record, client)
            return self._start(record, client, status, restore, "first start", restart=False)
        job_id = status.flink_job_id or flink_job_id(self.name, status.attempt)
        try:
            state = client.job_state(job_id)
        except FlinkUnreachable as exc:
            return self._unreachable(status, exc)
        if state is None:
            if status.phase == SUBMIT_FAILED:
                return self._restart(record, client, status, status.last_failure)
            if status.submit_pending:
                return self._submit(record, client, status, status.restored_from)
            return self._restart(
                record, client, status, f"attempt {status.attempt} is missing from the cluster"
            )
        if state == "FAILED":
            cause = client.root_exception(job_id) or ROOT_CAUSE_PENDING
            return self._restart(record, client, status, f"FAILED: {cause}")
        if state == "CANCELED":
            return self._restart(record, client, status, "CANCELED outside flinksched")
        if state == "FINISHED":
            return self._observe(
                status.with_changes(phase=FINISHED, submit_pending=False, reason="job finished"),
                f"attempt {status.attempt} finished",
            )
        if state == "RUNNING":
            return self._running(client, status, job_id)
        if state in ("RESTARTING", "FAILING"):
            return self._observe(
                status.with_changes(phase=RESTARTING, submit_pending=False,
                                    reason=f"Flink is {state} attempt {status.attempt}"),
                f"attempt {status.attempt} is {state} inside Flink",
            )
        return self._observe(
            status.with_changes(submit_pending=False), f"attempt {status.attempt} is {state}"
        )

    # -- decisions -----------------------------------------------------------------------
    def _running(self, client: FlinkClient, status: JobStatus, job_id: str) -> str:
        try:
            stats = client.checkpoints(job_id)
        except FlinkUnreachable:
            stats = None
        completed = [c for c in from_flink_stats(stats) if c.timestamp > 0]
        changes: dict[str, Any] = {
            "phase": RUNNING,
            "submit_pending": False,
            "reason": "",
            "last_checkpoint": newest([*completed, status.last_checkpoint]),
        }
        if status.last_failure.endswith(ROOT_CAUSE_PENDING) and status.attempt > 1:
            previous = flink_job_id(self.name, status.attempt - 1)
            cause = client.root_exception(previous)
            if cause:
                changes["last_failure"] = status.last_failure.replace(ROOT_CAUSE_PENDING, cause)
        message = f"attempt {status.attempt} ({job_id}) RUNNING"
        if status.phase != RUNNING:
            changes["since"] = time.time()
            if self.failure_seen is not None:
                took = time.monotonic() - self.failure_seen
                RECOVERY_SECONDS.observe(took)
                self.failure_seen = None
                restored = status.restored_from or "empty state"
                self._event(
                    f"attempt {status.attempt} RUNNING {took:.1f}s after the failure was seen "
                    f"(restored from {restored})"
                )
        return self._observe(status.with_changes(**changes), message)

    def _restart(
        self, record: JobRecord, client: FlinkClient, status: JobStatus, cause: str
    ) -> str:
        now = time.time()
        if self.failure_seen is None:
            self.failure_seen = time.monotonic()
        policy = record.spec["restartPolicy"]
        recent = recent_restarts(status.restart_times, now, float(policy["window"]))
        if len(recent) >= int(policy["maxRestarts"]):
            reason = f"{len(recent)} restarts within {policy['window']:g}s; last: {cause}"
            crash = status.with_changes(
                phase=CRASH_LOOP, reason=reason, last_failure=cause, restart_times=recent
            )
            if status.phase != CRASH_LOOP:
                self._event(f"CrashLoopBackOff: {reason}")
            return self._observe(crash, f"crash loop: {reason}")
        delay = backoff_delay(len(recent), policy["backoff"])
        if recent and now - recent[-1] < delay:
            waiting = status.with_changes(
                phase=RECOVERING, reason=f"backing off {delay:g}s after: {cause}",
                last_failure=cause,
            )
            return self._observe(waiting, f"backing off {delay:g}s before restarting")
        restore = self._restore_point(record, client, status)
        return self._start(record, client, status, restore, cause, restart=True, recent=recent)

    def _start(
        self,
        record: JobRecord,
        client: FlinkClient,
        status: JobStatus,
        restore: Checkpoint | None,
        cause: str,
        *,
        restart: bool,
        recent: tuple[float, ...] = (),
    ) -> str:
        """Claim the next attempt (compare-and-set), then submit it."""
        if not self.guard.can_act():
            return "paused: ZooKeeper connection is not healthy"
        now = time.time()
        attempt = status.attempt + 1
        claimed = status.with_changes(
            phase=SUBMITTING,
            attempt=attempt,
            flink_job_id=flink_job_id(self.name, attempt),
            observed_generation=record.generation,
            restored_from=restore.path if restore else "",
            submit_pending=True,
            since=now,
            reason=cause,
            worker=self.owner.holder,
            last_failure=cause if restart else status.last_failure,
            restarts=status.restarts + (1 if restart else 0),
            restart_times=(*recent, now) if restart else status.restart_times,
            last_checkpoint=newest([status.last_checkpoint, restore]),
        )
        self._write(claimed)
        origin = restore.label if restore else "empty state"
        verb = "restarted" if restart else "started"
        decision = f"{verb} attempt {attempt} from {origin} after {cause}"
        self._event(decision, restoredFrom=restore.path if restore else "")
        return f"{decision}; {self._submit(record, client, claimed, claimed.restored_from)}"

    def _submit(
        self, record: JobRecord, client: FlinkClient, status: JobStatus, restore_path: str
    ) -> str:
        """Submit the claimed attempt with its deterministic job id; safe to repeat."""
        if not self.guard.can_act():
            return "paused: ZooKeeper connection is not healthy"
        job = record.spec["job"]
        body: dict[str, Any] = {
            "jobId": status.flink_job_id,
            "programArgsList": list(job.get("args", [])),
            "allowNonRestoredState": bool(job.get("allowNonRestoredState", False)),
            "flinkConfiguration": dict(record.spec.get("flinkConfiguration", {})),
        }
        if job.get("entryClass"):
            body["entryClass"] = job["entryClass"]
        if job.get("parallelism"):
            body["parallelism"] = int(job["parallelism"])
        if restore_path:
            body["savepointPath"] = restore_path
        outcome = f"submitted attempt {status.attempt} as {status.flink_job_id}"
        try:
            try:
                client.run_jar(self.jars.jar_id(client, job["jarURI"]), body)
            except JarMissing:
                self.jars.forget(client)
                client.run_jar(self.jars.jar_id(client, job["jarURI"]), body)
        except JobAlreadySubmitted:
            outcome = f"attempt {status.attempt} was already submitted; adopting it"
        except FlinkUnreachable as exc:
            return self._unreachable(status, exc)
        except (FlinkRequestFailed, JarError) as exc:
            reason = exc.message if isinstance(exc, FlinkRequestFailed) else str(exc)
            reason = reason.strip()[:1000]
            self._event(f"submission of attempt {status.attempt} rejected: {reason}")
            failed = status.with_changes(phase=SUBMIT_FAILED, reason=reason, last_failure=reason)
            return self._observe(failed, f"submission rejected: {reason[:200]}")
        return self._observe(status.with_changes(submit_pending=False), outcome)

    def _unreachable(self, status: JobStatus, exc: FlinkschedError) -> str:
        down = status.with_changes(phase=CLUSTER_UNREACHABLE, reason=str(exc)[:300])
        return self._observe(down, f"cluster unreachable: {exc}")

    # -- restore points ------------------------------------------------------------------
    def _restore_point(
        self, record: JobRecord, client: FlinkClient, status: JobStatus
    ) -> Checkpoint | None:
        candidates: list[Checkpoint | None] = [status.last_checkpoint]
        try:
            stats = client.checkpoints(flink_job_id(self.name, status.attempt))
            candidates.extend(from_flink_stats(stats))
        except FlinkUnreachable:
            pass
        candidates.extend(self._retained(record, client))
        return newest(candidates)

    def _first_restore_point(self, record: JobRecord, client: FlinkClient) -> Checkpoint | None:
        initial = record.spec["job"].get("initialSavepointPath")
        if initial:
            return Checkpoint(path=str(initial), id=0, timestamp=0, kind="savepoint")
        return newest(self._retained(record, client))

    def _retained(self, record: JobRecord, client: FlinkClient) -> list[Checkpoint]:
        try:
            cluster_config = self.clients.cluster_config(client)
        except FlinkUnreachable:
            cluster_config = {}
        directory = checkpoint_dir(record.spec.get("flinkConfiguration", {}), cluster_config)
        return retained_on_disk(directory, name_prefix(self.name)) if directory else []

    # -- writes --------------------------------------------------------------------------
    def _observe(self, new: JobStatus, message: str) -> str:
        """Write the status when it changed; an unchanged status costs no ZooKeeper write."""
        if new != self.current:
            self._write(new)
        return message

    def _write(self, new: JobStatus) -> None:
        self.version = self.store.write_status(self.name, new, self.version, self.owner)
        self.current = new

    def _event(self, message: str, **extra: Any) -> None:
        self.store.append_event(self.name, self.source, message, **extra)
