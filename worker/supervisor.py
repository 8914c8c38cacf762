"""One owned job's state machine against Flink: submit, watch, track checkpoints, restart.

Each cycle reads one snapshot (desired record, status, the attempt's Flink state), takes one
decision and returns it as a sentence, which is logged when it changes and asserted in tests.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from kazoo.exceptions import KazooException

from common.durations import parse_duration
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
from common.flink import TERMINAL_STATES, FlinkClient
from common.flinkaccess import ClusterAccess
from common.jobids import attempt_of, flink_job_id, name_prefix
from common.metrics import RECOVERY_SECONDS
from common.records import (
    CLUSTER_UNREACHABLE,
    CRASH_LOOP,
    FINISHED,
    HELD_PHASES,
    NO_RESTORE_POINT,
    RECOVERING,
    REMOVED,
    RESTARTING,
    RESTORE_INCOMPATIBLE,
    RUNNING,
    SUBMIT_FAILED,
    SUBMITTING,
    SUSPENDED,
    Fence,
    JobRecord,
    JobStatus,
    RejectedRestore,
)
from common.store import Store
from worker.clients import ClusterStates, FlinkClients
from worker.fencing import ConnectionGuard
from worker.jars import JarCache, JarError
from worker.orphans import highest_attempt, newer_live_attempt, orphan_ids
from worker.policy import backoff_delay, recent_restarts
from worker.restore import RestorePoints, from_flink_stats, newest, reports_placeholder
from worker.restorecheck import (
    INCOMPATIBLE_HINT,
    FailureClass,
    RestoreChoice,
    classify_failure,
    no_restore_point_reason,
)
from worker.savepoints import SavepointKeeper
from worker.upgrades import Upgrades
from worker.watched import WatchedJob

logger = logging.getLogger(__name__)

MAX_UNREACHABLE_WAIT = 5.0
QUIET_WAIT = 5.0  # between cycles of an attempt the listing watches: it wakes them sooner
FAST_POLL = 0.1  # while an attempt is being stopped or a savepoint taken
CHECKPOINT_STATS_INTERVAL = 3.0  # Flink refreshes checkpoint statistics every 3 s by default
CHECKPOINT_STATS_MAX_INTERVAL = 30.0  # however seldom the job checkpoints
ORPHAN_CHECK_INTERVAL = 10.0
RESTART_COUNT_INTERVAL = 5.0  # within a minute of Flink restarting the attempt itself
# Otherwise: a restart lasting a poll interval shows in the listing (RESTARTING) and brings
# the count to the 5 s pace; this catches the quicker ones a listing missed.
QUIET_RESTART_COUNT_INTERVAL = 60.0
QUIET_AFTER = 60.0
STARTING_STATES = ("INITIALIZING", "CREATED")  # a new attempt on its way to RUNNING
CHECKPOINT_INTERVAL_KEY = "execution.checkpointing.interval"
RETENTION_KEY = "execution.checkpointing.externalized-checkpoint-retention"
# Flink serves exception history from a cache (web.refresh-interval); it can lag the failure.
ROOT_CAUSE_PENDING = "root exception not reported by Flink yet"
LISTED_PHASES = (SUBMITTING, RUNNING, RESTARTING)  # whose attempt the shared listing watches
HELD_RECHECK = 10.0  # a job with no usable restore point looks for one again this often
NON_DURABLE = ("its checkpoints are kept only in the JobManager's memory (the cluster has no "
               "execution.checkpointing.dir) and it has no usable savepoint")


def stats_interval(record: JobRecord) -> float:
    """How often a RUNNING attempt's checkpoint statistics are read: as often as it
    checkpoints, between 3 s and 30 s (a restart reads them afresh anyway)."""
    configured = record.spec.get("flinkConfiguration", {}).get(CHECKPOINT_INTERVAL_KEY)
    try:
        interval = parse_duration(configured) if configured is not None else 0.0
    except ValueError:
        interval = 0.0
    return min(max(interval, CHECKPOINT_STATS_INTERVAL), CHECKPOINT_STATS_MAX_INTERVAL)


def run_request(record: JobRecord, job_id: str, restore_path: str) -> dict[str, Any]:
    """The body of POST /jars/<id>/run for one attempt of a job."""
    job = record.spec["job"]
    body: dict[str, Any] = {
        "jobId": job_id,
        "programArgsList": list(job.get("args", [])),
        "allowNonRestoredState": bool(job.get("allowNonRestoredState", False)),
        # flinksched restores from retained checkpoints: keep them when a job is cancelled.
        "flinkConfiguration": {RETENTION_KEY: "RETAIN_ON_CANCELLATION",
                               **record.spec.get("flinkConfiguration", {})},
    }
    if job.get("entryClass"):
        body["entryClass"] = job["entryClass"]
    if job.get("parallelism"):
        body["parallelism"] = int(job["parallelism"])
    if restore_path:
        body["savepointPath"] = restore_path
    return body


class JobSupervisor(Upgrades):
    def __init__(
        self,
        store: Store,
        name: str,
        owner: Fence,
        guard: ConnectionGuard,
        jars: JarCache,
        clients: FlinkClients,
        scheduler: BaseScheduler | None = None,
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
        self._wake = threading.Event()  # a change in ZooKeeper or Flink: run the next cycle now
        self.savepoints = SavepointKeeper(name, scheduler, wake=self._wake.set)
        self.pending_stop: str | None = None  # trigger id of a stop-with-savepoint
        self.restore_points = RestorePoints(name, clients)
        self._checked: dict[str, float] = {}  # monotonic time each periodic check last ran
        self._states: ClusterStates | None = None  # the listing this job is watched through
        self._cluster: tuple[dict[str, Any], FlinkClient] | None = None  # record's, client
        self._name_prefix = name_prefix(name)  # of every Flink job id of this job
        self._unsettled = float("-inf")  # the last time Flink showed the attempt restarting
        self._quiet = False  # the listing watches the attempt and wakes this supervisor
        self._submitted = float("-inf")  # monotonic time of this supervisor's last submission
        self._created = float("-inf")  # ... when that submission created the attempt
        self._stop = threading.Event()
        self.watched = WatchedJob(store, name, self._wake.set)
        self._status_stale = True  # read the status again before the next decision
        self._thread = threading.Thread(target=self.run, name=f"job-{name}", daemon=True)

    # -- thread --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.watched.close()
        if self._states is not None:
            self._states.unwatch(self.name)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def release(self) -> None:
        """Hand the job back: clear this worker from its status, then drop ownership."""
        try:
            status, version = self.store.status(self.name)
            if status.worker == self.owner.holder:
                self.store.write_status(self.name, status.with_changes(worker=""), version,
                                        self.owner)
        except (StoreError, KazooException) as exc:
            logger.info("job %s: status not cleared on release: %s", self.name, exc)
        self.store.release_ownership(self.owner)

    def _begin(self) -> None:
        """In the supervisor's own thread, so a worker taking many jobs starts them at once."""
        # A new generation, a removal, an override or a command acts at once, not a poll
        # later. Until a watch reports (or where one could not be set), each cycle reads the
        # value itself: slower to notice, not wrong.
        try:
            self.watched.start()
        except KazooException as exc:  # the client is closing: the cycles read for themselves
            logger.warning("job %s: watches not set: %r", self.name, exc)
        try:
            self._event(f"owned by worker {self.owner.holder}")
        except (StoreError, KazooException) as exc:
            logger.warning("job %s: ownership event not recorded: %r", self.name, exc)

    def run(self) -> None:
        self._begin()
        wait = self.poll_interval
        while not self._stop.is_set():
            if not self.guard.can_act():
                self._stop.wait(0.1)
                continue
            self._quiet = False
            try:
                message = self.cycle()
            except FencedError as exc:
                logger.warning("job %s: stopping, ownership lost: %s", self.name, exc)
                self.fenced = True
                break
            except ConflictError as exc:
                self._status_stale = True
                message = f"status changed concurrently, re-reading: {exc}"
            except (StoreError, KazooException) as exc:
                self._status_stale = True
                message = f"ZooKeeper error: {exc!r}"
            except FlinkschedError as exc:
                message = f"error: {exc}"
            except Exception:
                logger.exception("job %s: unexpected error in cycle", self.name)
                message = "unexpected error (see the log)"
            if message != self.last_message:
                self._log_decision(message)
                self.last_message = message
            unreachable = message.startswith("cluster unreachable")
            wait = min(MAX_UNREACHABLE_WAIT, wait * 2) if unreachable else self.poll_interval
            if self._quiet:  # the listing wakes this thread when the state changes
                wait = max(wait, QUIET_WAIT)
            if self.pending_stop or self.current.stopping or self.savepoints.pending:
                wait = min(wait, FAST_POLL)  # an attempt is ending or a savepoint is running
            self._wake.wait(wait)
            self._wake.clear()
        self.savepoints.close()
        if self._states is not None:
            self._states.unwatch(self.name)

    def _log_decision(self, message: str) -> None:
        """One line per decision, naming the job, its attempt and the attempt's Flink job id
        (also as fields of the JSON log format)."""
        attempt, job_id = self.current.attempt, self.current.flink_job_id or "-"
        logger.info("job %s attempt %d (%s): %s", self.name, attempt, job_id, message,
                    extra={"job": self.name, "attempt": attempt, "flinkJobId": job_id})

    def _due_now(self, check: str, interval: float) -> bool:
        now = time.monotonic()
        if now - self._checked.get(check, float("-inf")) < interval:
            return False
        self._checked[check] = now
        return True

    # -- one cycle -----------------------------------------------------------------------
    def cycle(self) -> str:
        record = self.watched.record()
        if record is None:
            self._stop.set()
            return "job no longer exists in ZooKeeper"
        self.poll_interval = float(record.spec.get("pollInterval", 1.0))
        self.savepoints.configure(record.spec["savepoints"].get("schedule"))
        if self._status_stale:
            # This supervisor is the status's only writer (every write is a compare-and-set
            # fenced by ownership), so what it wrote last is current until a write fails.
            self.current, self.version = self.store.status(self.name)
            self._status_stale = False
        status = self.current
        if status.worker != self.owner.holder:  # took the job over: say so in the status
            self._write(status.with_changes(worker=self.owner.holder))
            status = self.current
        client = self._client(record)
        with self.clients.turn(client):
            return self._decide(record, status, client)

    def _decide(self, record: JobRecord, status: JobStatus, client: FlinkClient) -> str:
        """The cycle's decision, taken in one of the cluster's turns."""
        restart_command = self._take_commands()
        hold, why = self._desired_hold(record)
        if status.attempt == 0:
            adopted = self._adopt_newer(record, client, status)
            if adopted is not None:
                return adopted
            if hold:
                held = status.with_changes(phase=hold, reason=why,
                                           observed_generation=record.generation)
                return self._observe(held, f"not started: {why}")
            choice = self.restore_points.first(record, client, status)
            return self._start(record, client, status, choice, "first start", kind="first")
        job_id = status.flink_job_id or flink_job_id(self.name, status.attempt)
        try:
            state = self._flink_state(client, status, job_id)
        except FlinkUnreachable as exc:
            return self._unreachable(status, exc)
        if state is None or state in TERMINAL_STATES:
            adopted = self._adopt_newer(record, client, status)
            if adopted is not None:
                return adopted
        if hold:
            if restart_command is not None:
                self.store.delete_command(self.name, restart_command[0])
                self._event(f"ignored a restart request: the job is {hold.lower()}")
            return self._suspend(record, client, status, state, job_id, hold, why)
        if status.phase in (SUSPENDED, REMOVED):
            choice = self.restore_points.after(record, client, status)
            return self._start(record, client, status, choice, "resume", kind="resume")
        if self._upgrade_due(record, status):
            upgrading = self._upgrade(record, client, status, state, job_id)
            if upgrading is not None:
                return upgrading
        status = self._apply_in_place(record, status)
        if restart_command is not None:
            return self._requested_restart(record, client, status, state, *restart_command)
        if status.phase in HELD_PHASES and (state is None or state in TERMINAL_STATES):
            return self._held(record, client, status)
        waiting = status.phase in (SUBMIT_FAILED, CRASH_LOOP, RECOVERING) and status.last_failure
        if state is None:
            if status.submit_pending and status.phase in (SUBMITTING, CLUSTER_UNREACHABLE):
                return self._submit(record, client, status, status.restored_from)  # unknown
            if waiting:
                return self._restart(record, client, status, status.last_failure)
            return self._lost(record, client, status)
        if state == "FAILED":
            if waiting:
                return self._restart(record, client, status, status.last_failure)
            return self._failed(record, client, status, job_id)
        if state == "CANCELED":
            return self._restart(record, client, status,
                                 status.stopping or "CANCELED outside flinksched")
        if state == "FINISHED":
            return self._observe(
                status.with_changes(phase=FINISHED, submit_pending=False, reason="job finished"),
                f"attempt {status.attempt} finished",
            )
        return self._alive(record, client, status, job_id, state)

    def _client(self, record: JobRecord) -> FlinkClient:
        """The cluster's client, looked up again only when the record's cluster changed."""
        if self._cluster is None or self._cluster[0] is not record.cluster:
            access = ClusterAccess.of(record.cluster["spec"])
            self._cluster = (record.cluster, self.clients.get(access))
        return self._cluster[1]

    def _flink_state(self, client: FlinkClient, status: JobStatus, job_id: str) -> str | None:
        """The attempt's state. A submitted, running or restarting attempt is read from the
        worker's shared listing of the cluster (which wakes this supervisor when the state
        changes) once a listing asked for after the submission shows it; an attempt being
        stopped or savepointed, held, failed or not listed yet is asked for on its own."""
        states = self._watch_attempt(client, job_id)
        # Only this supervisor's submissions and stops change an attempt's state; a listing
        # asked for before the submission, or during a stop, is not evidence.
        listable = (status.phase in LISTED_PHASES and not status.stopping
                    and not self.pending_stop and not self.savepoints.pending)
        state = states.listed(self.name, job_id, 2 * self.poll_interval,
                              since=self._submitted) if listable else None
        # The listing wakes this supervisor when the attempt's state changes: no need to look
        # before the quiet wait is out.
        self._quiet = state is not None and state not in TERMINAL_STATES
        if state is None:
            state = client.job_state(job_id)
        if state != "RUNNING" and state not in STARTING_STATES:
            self._unsettled = time.monotonic()
        return state

    def _watch_attempt(self, client: FlinkClient, job_id: str) -> ClusterStates:
        """Have the worker's listing of the cluster wake this supervisor when the attempt's
        state changes (or it appears)."""
        states = self.clients.states(client)
        if self._states is not states:
            if self._states is not None:
                self._states.unwatch(self.name)
            self._states = states
        states.watch(self.name, job_id, self.poll_interval, self._wake.set)
        return states

    # -- decisions -----------------------------------------------------------------------
    def _failed(self, record: JobRecord, client: FlinkClient, status: JobStatus,
                job_id: str) -> str:
        """The attempt FAILED: a restore point Flink could not read is passed over for the
        next-newest at once; state that does not fit the program holds the job; anything
        else is a failure of the job, restarted by the policy."""
        cause = client.root_exception(job_id) or ROOT_CAUSE_PENDING
        failure = classify_failure(cause, status.restored_from,
                                   ever_ran=status.phase != SUBMITTING)
        if failure is FailureClass.RESTORE_UNREADABLE:
            return self._reject_restore(record, client, status, cause)
        if failure is FailureClass.RESTORE_INCOMPATIBLE:
            return self._hold_incompatible(status, cause)
        return self._restart(record, client, status, f"FAILED: {cause}")

    def _hold_incompatible(self, status: JobStatus, cause: str) -> str:
        """The restored state does not fit the program: the same restore fails the same way,
        so the job is held, with Flink's message and what resolves it, until an operator or
        a new generation moves it on."""
        reason = f"cannot restore {status.restored_from}: {cause}; {INCOMPATIBLE_HINT}"
        if status.phase != RESTORE_INCOMPATIBLE:
            self._event(f"attempt {status.attempt} cannot use its restored state; held: {cause}")
        held = status.with_changes(phase=RESTORE_INCOMPATIBLE, reason=reason[:1500],
                                   last_failure=cause, submit_pending=False)
        return self._observe(held, f"held: restored state does not fit: {cause[:200]}")

    def _reject_restore(self, record: JobRecord, client: FlinkClient, status: JobStatus,
                        cause: str) -> str:
        """Flink could not read the attempt's restore point: remember it as unusable and start
        the next attempt from the next-newest point, outside the restart policy's budget."""
        path = status.restored_from
        rejected = status.with_rejected(
            RejectedRestore(path, f"Flink could not restore from it: {cause[:300]}", time.time()))
        self._event(f"restore point {path} of attempt {status.attempt} is unusable: {cause}; "
                    "trying the next-newest")
        self._write(rejected)
        if self.failure_seen is None:
            self.failure_seen = time.monotonic()
        choice = self.restore_points.after(record, client, rejected)
        why = f"restore point {path} was unusable (not counted against the restart policy)"
        return self._start(record, client, rejected, choice, why, kind="rejected")

    def _held(self, record: JobRecord, client: FlinkClient, status: JobStatus) -> str:
        """A job held for its state: only an operator, a new generation or (for a missing
        restore point) a usable point appearing moves it on. Never the same retry again."""
        if status.phase == NO_RESTORE_POINT and self._due_now("held", HELD_RECHECK):
            choice = self.restore_points.after(record, client, status)
            if choice.point is not None:
                return self._start(record, client, status, choice,
                                   f"restore point {choice.point.path} became usable",
                                   kind="lost")
        return f"held in {status.phase}: {status.reason[:200]}"

    def _adopt_newer(self, record: JobRecord, client: FlinkClient,
                     status: JobStatus) -> str | None:
        """Flink runs an attempt newer than the status knows (ZooKeeper lost or rolled back its
        data): adopt it, found by the job-id prefix; never restart it or start another."""
        try:
            attempts = self.clients.states(client).listed_attempts(self._name_prefix)
        except FlinkschedError:
            return None
        newer = newer_live_attempt(attempts, self.name, status.attempt)
        if newer is None:
            return None
        attempt, job_id = newer
        known = f"attempt {status.attempt}" if status.attempt else "no attempt"
        why = (f"adopted attempt {attempt} ({job_id}), running in Flink; ZooKeeper's status "
               f"knew {known} (its data was lost or rolled back)")
        self._event(why)
        adopted = status.with_changes(
            phase=SUBMITTING, attempt=attempt, flink_job_id=job_id, submit_pending=False,
            stopping="", observed_generation=record.generation, submit_hash=record.submit_hash,
            since=time.time(), reason=why, worker=self.owner.holder)
        self._created = float("-inf")  # its checkpoints and restarts are read at once
        self._checked.pop("stats", None)
        self._checked.pop("restart-count", None)
        self._write(adopted)
        return why

    def _alive(
        self, record: JobRecord, client: FlinkClient, status: JobStatus, job_id: str, state: str
    ) -> str:
        """The attempt exists and is not terminal: watch it."""
        if self._due_now("orphans", ORPHAN_CHECK_INTERVAL):
            self._cancel_orphans(client, status)
        changes, crash = self._count_flink_restarts(record, client, status, job_id)
        if crash:
            client.cancel(job_id)
            self._event(f"CrashLoopBackOff: {crash}; cancelled attempt {status.attempt}")
            looping = status.with_changes(phase=CRASH_LOOP, reason=crash, stopping=crash,
                                          last_failure=crash, **changes)
            return self._observe(looping, f"crash loop: {crash}")
        if state != "RUNNING":
            phase = RESTARTING if state in ("RESTARTING", "FAILING") else status.phase
            reason = f"Flink is {state} attempt {status.attempt}" if phase == RESTARTING else (
                status.reason)
            changed = status.with_changes(phase=phase, reason=reason, submit_pending=False,
                                          **changes)
            return self._observe(changed, f"attempt {status.attempt} is {state}")
        return self._running(record, client, status.with_changes(**changes), job_id)

    def _running(
        self, record: JobRecord, client: FlinkClient, status: JobStatus, job_id: str
    ) -> str:
        changes: dict[str, Any] = {"phase": RUNNING, "submit_pending": False, "reason": ""}
        interval = stats_interval(record)
        # An attempt this supervisor submitted less than an interval ago is read when the
        # interval is out, not on its way to RUNNING: its restore point is in the status
        # already, and its own first checkpoints wait at most that interval to be recorded.
        # An attempt it did not submit (taken over, adopted) is read at once.
        fresh = time.monotonic() - self._created < interval
        if self._due_now("stats", interval) or (status.phase != RUNNING and not fresh):
            try:
                stats = client.checkpoints(job_id)
            except FlinkUnreachable:
                stats = None
            completed = [c for c in from_flink_stats(stats) if c.timestamp > 0]
            changes["last_checkpoint"] = newest([*completed, status.last_checkpoint])
            if stats is not None:
                durable = bool(completed) or not reports_placeholder(stats)
                if not durable and status.checkpoints_durable:
                    self._event(f"checkpoints of attempt {status.attempt} are not externally "
                                "addressable: a restart can restore only from a savepoint "
                                "(configure execution.checkpointing.dir)")
                changes["checkpoints_durable"] = durable
        if status.last_failure.endswith(ROOT_CAUSE_PENDING) and status.attempt > 1:
            cause = client.root_exception(flink_job_id(self.name, status.attempt - 1))
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
        running = status.with_changes(**changes)
        retain = int(record.spec["savepoints"].get("retain", 5))
        outcome = self.savepoints.step(client, running, job_id, retain)
        for event in outcome.events:
            self._event(event)
        return self._observe(outcome.status or running, message)

    def _count_flink_restarts(
        self, record: JobRecord, client: FlinkClient, status: JobStatus, job_id: str
    ) -> tuple[dict[str, Any], str]:
        """Flink's own restarts count against the policy too; past it, a crash loop."""
        quiet = time.monotonic() - self._unsettled > QUIET_AFTER
        interval = QUIET_RESTART_COUNT_INTERVAL if quiet else RESTART_COUNT_INTERVAL
        if not self._due_now("restart-count", interval):
            return {}, ""
        try:
            count = client.restart_count(job_id)
        except FlinkschedError:
            return {}, ""
        if count is None or count <= status.flink_restarts:
            return {}, ""
        policy = record.spec["restartPolicy"]
        now, window, limit = time.time(), float(policy["window"]), int(policy["maxRestarts"])
        added = min(count - status.flink_restarts, max(limit, 1))
        times = (*recent_restarts(status.restart_times, now, window), *([now] * added))
        changes = {"flink_restarts": count, "restart_times": times}
        if len(times) < limit or limit == 0:
            return changes, ""
        return changes, (f"Flink restarted attempt {status.attempt} {count} times; "
                         f"{len(times)} restarts within {window:g}s")

    def _cancel_orphans(self, client: FlinkClient, status: JobStatus) -> None:
        try:
            attempts = self.clients.states(client).listed_attempts(self._name_prefix)
        except FlinkschedError:
            return
        for orphan in orphan_ids(attempts, self.name, status.attempt):
            client.cancel(orphan)
            self._event(f"cancelled orphan {orphan} (attempt {attempt_of(self.name, orphan)}): "
                        f"the current attempt is {status.attempt}")

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
        choice = self.restore_points.after(record, client, status)
        return self._start(record, client, status, choice, cause, kind="failure", recent=recent)

    def _lost(self, record: JobRecord, client: FlinkClient, status: JobStatus) -> str:
        """The cluster no longer knows the attempt (its JobManager restarted without HA, or
        the job was removed): the job did not fail, so it is started again at once from its
        newest restore point and the restart policy's budget is left alone."""
        if self.failure_seen is None:
            self.failure_seen = time.monotonic()
        choice = self.restore_points.after(record, client, status)
        cause = (f"attempt {status.attempt} is missing from the cluster "
                 "(not counted against the restart policy)")
        return self._start(record, client, status, choice, cause, kind="lost")

    def _start(
        self,
        record: JobRecord,
        client: FlinkClient,
        status: JobStatus,
        choice: RestoreChoice,
        cause: str,
        *,
        kind: str,
        recent: tuple[float, ...] = (),
    ) -> str:
        """Claim the next attempt (compare-and-set), then submit it.

        `kind` is "first", "failure" (counts against the restart policy), "lost" (the
        cluster lost the attempt: a restart that does not count), "rejected" (the last restore
        point was unusable: does not count either), "requested" (an operator's restart),
        "resume" or "upgrade" (a new generation: the restart policy's budget starts afresh).
        Candidates the check passed over are events (they are checked afresh each time: a file
        that comes back is usable again; only Flink's rejections are remembered); with
        candidates but none usable the job stops in NoRestorePoint instead of losing its state
        silently.
        """
        if not self.guard.can_act():
            return "paused: ZooKeeper connection is not healthy"
        now = time.time()
        for rejected in choice.rejected:
            self._event(f"restore point {rejected.path} passed over: {rejected.reason}")
        if choice.exhausted and status.checkpoints_durable:
            reason = no_restore_point_reason(self.name,
                                             (*status.rejected_restores, *choice.rejected))
            if status.phase != NO_RESTORE_POINT:
                self._event(f"not restarted: {reason}")
            stopped = status.with_changes(phase=NO_RESTORE_POINT, reason=reason,
                                          submit_pending=False, last_failure=cause)
            self._checked["held"] = time.monotonic()
            return self._observe(stopped, f"no usable restore point after {cause}")
        restore = choice.point
        try:
            listed = self.clients.states(client).listed_attempts(self._name_prefix)
        except FlinkschedError:
            listed = {}
        # A new attempt never reuses an id Flink still knows (a rolled-back status).
        attempt = max(status.attempt, highest_attempt(listed, self.name)) + 1
        failure = kind == "failure"
        claimed = status.with_changes(
            phase=SUBMITTING,
            attempt=attempt,
            flink_job_id=flink_job_id(self.name, attempt),
            observed_generation=record.generation,
            submit_hash=record.submit_hash,
            restored_from=restore.path if restore else "",
            submit_pending=True,
            stopping="",
            flink_restarts=0,
            since=now,
            reason=cause,
            worker=self.owner.holder,
            last_failure=cause if kind in ("failure", "lost", "rejected") else status.last_failure,
            restarts=status.restarts + (
                1 if kind in ("failure", "lost", "rejected", "requested") else 0),
            restart_times=(*recent, now) if failure else (
                () if kind == "upgrade" else status.restart_times),
            last_checkpoint=newest([status.last_checkpoint, restore]),
        )
        self._write(claimed)
        origin = restore.label if restore else "empty state"
        if restore is None and not status.checkpoints_durable:
            origin += f" ({NON_DURABLE})"
        elif restore is None and kind in ("first", "failure", "lost"):
            origin += " (no checkpoint or savepoint of this job exists yet)"
        verb = {"first": "started", "resume": "resumed", "upgrade": "started"}.get(
            kind, "restarted")
        decision = f"{verb} attempt {attempt} from {origin} after {cause}"
        outcome = self._submit(record, client, claimed, claimed.restored_from)
        # Recorded after the submission, to keep it off the restart's path.
        self._event(decision, restoredFrom=restore.path if restore else "", claimedAt=now)
        return f"{decision}; {outcome}"

    def _submit(
        self, record: JobRecord, client: FlinkClient, status: JobStatus, restore_path: str
    ) -> str:
        """Submit the claimed attempt with its deterministic job id; safe to repeat."""
        if not self.guard.can_act():
            return "paused: ZooKeeper connection is not healthy"
        job = record.spec["job"]
        body = run_request(record, status.flink_job_id, restore_path)
        outcome = f"submitted attempt {status.attempt} as {status.flink_job_id}"
        self._submitted = time.monotonic()  # older listings cannot show this attempt
        self._created = self._submitted  # unless it turns out to exist already
        self._watch_attempt(client, status.flink_job_id)  # woken when a listing shows it
        # A fresh attempt has no restarts of its own to count, nor checkpoints, yet.
        self._checked["restart-count"] = self._checked["stats"] = time.monotonic()
        try:
            try:
                client.run_jar(self.jars.jar_id(client, job["jarURI"], job.get("jarSHA256")), body)
            except JarMissing:
                self.jars.forget(client)
                client.run_jar(self.jars.jar_id(client, job["jarURI"], job.get("jarSHA256")), body)
        except JobAlreadySubmitted:
            outcome = f"attempt {status.attempt} was already submitted; adopting it"
            # It may have restarted, or checkpointed, already.
            self._checked.pop("restart-count", None)
            self._checked.pop("stats", None)
            self._created = float("-inf")
        except FlinkUnreachable as exc:
            return self._unreachable(status, exc)
        except (FlinkRequestFailed, JarError) as exc:
            reason = exc.message if isinstance(exc, FlinkRequestFailed) else str(exc)
            reason = reason.strip()[:1000]
            failure = classify_failure(reason, restore_path, ever_ran=False)
            if failure is FailureClass.RESTORE_UNREADABLE:
                return self._reject_restore(record, client, status, reason)
            if failure is FailureClass.RESTORE_INCOMPATIBLE:
                return self._hold_incompatible(status, reason)
            self._event(f"submission of attempt {status.attempt} rejected: {reason}")
            failed = status.with_changes(phase=SUBMIT_FAILED, reason=reason, last_failure=reason,
                                         submit_pending=False)
            return self._observe(failed, f"submission rejected: {reason[:200]}")
        self._quiet = True  # the listing wakes this supervisor when the attempt shows up
        return self._observe(status.with_changes(submit_pending=False), outcome)

    def _unreachable(self, status: JobStatus, exc: FlinkschedError) -> str:
        down = status.with_changes(phase=CLUSTER_UNREACHABLE, reason=str(exc)[:300])
        return self._observe(down, f"cluster unreachable: {exc}")

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
