"""Operator actions on one job: command nodes (restart, savepoint) and suspension.

A mixin of JobSupervisor, kept apart so the state machine's core stays readable.
"""

from __future__ import annotations

import time
from typing import Any

from common.errors import FlinkschedError
from common.flink import TERMINAL_STATES, FlinkClient
from common.records import REMOVED, SUSPENDED, Checkpoint, JobRecord, JobStatus
from common.store import Store
from worker.restore import RestorePoints, checkpoint_number
from worker.restorecheck import RestoreChoice, location, rejection
from worker.savepoints import SavepointKeeper
from worker.watched import WatchedJob


class OperatorActions:
    store: Store
    name: str
    savepoints: SavepointKeeper
    restore_points: RestorePoints
    pending_stop: str | None
    current: JobStatus
    watched: WatchedJob

    # provided by JobSupervisor
    def _event(self, message: str, **extra: Any) -> None:
        raise NotImplementedError

    def _write(self, new: JobStatus) -> None:
        raise NotImplementedError

    def _observe(self, new: JobStatus, message: str) -> str:
        raise NotImplementedError

    def _start(self, record: JobRecord, client: FlinkClient, status: JobStatus,
               choice: RestoreChoice, cause: str, *, kind: str,
               recent: tuple[float, ...] = ()) -> str:
        raise NotImplementedError

    def _desired_hold(self, record: JobRecord) -> tuple[str, str]:
        """The phase to hold the job in and why, or ("", "") when it should run. A job whose
        config is gone is removed; an operator's override wins over the spec until lifted."""
        if record.removed:
            return REMOVED, "removed from the config"
        override = self.watched.override()
        if override and override.get("state") == "suspended":
            return SUSPENDED, (f"suspended by {override.get('by', 'someone')}: "
                               f"{override.get('reason', 'no reason given')}")
        if record.spec["job"].get("state") == "suspended":
            return SUSPENDED, "suspended in the job spec"
        return "", ""

    def _stop_with_savepoint(
        self, client: FlinkClient, status: JobStatus, job_id: str, why: str
    ) -> tuple[str, Checkpoint | None, str]:
        """One step of stopping the attempt with a savepoint, across cycles.

        Returns (outcome, savepoint, message): outcome is "pending", "done" (savepoint is
        None when the attempt had already ended) or "failed" (the attempt keeps running).
        """
        if self.pending_stop is None:
            try:
                self.pending_stop = client.stop_with_savepoint(job_id)
            except FlinkschedError as exc:
                return "failed", None, f"stop with savepoint failed: {exc}"
            self._write(status.with_changes(stopping=why))
            self._event(f"stopping attempt {status.attempt} with a savepoint: {why}")
            return "pending", None, f"stopping attempt {status.attempt} with a savepoint"
        try:
            result, detail = client.savepoint_result(job_id, self.pending_stop)
        except FlinkschedError as exc:
            self.pending_stop = None
            return "failed", None, f"stop with savepoint lost track: {exc}"
        if result == "IN_PROGRESS":
            return "pending", None, f"stopping attempt {status.attempt}: savepoint in progress"
        self.pending_stop = None
        if result == "FAILED":
            self._event(f"stop with savepoint failed, attempt {status.attempt} keeps running: "
                        f"{detail}")
            return "failed", None, f"stop with savepoint failed: {detail}"
        taken = Checkpoint.savepoint(detail, status)
        self._event(f"attempt {status.attempt} stopped with savepoint {detail} ({why})")
        self._write(self.current.with_changes(
            stopping="", last_checkpoint=taken, savepoints=(*status.savepoints, taken)))
        return "done", taken, f"stopped with savepoint {detail}"

    def _suspend(self, record: JobRecord, client: FlinkClient, status: JobStatus,
                 state: str | None, job_id: str, phase: str, why: str) -> str:
        """Stop the running attempt with a savepoint (kept for the resume), then hold."""
        if self.pending_stop is None and (state is None or state in TERMINAL_STATES):
            held = status.with_changes(phase=phase, reason=why, stopping="",
                                       submit_pending=False,
                                       observed_generation=record.generation)
            return self._observe(held, f"{phase.lower()}: {why}")
        outcome, taken, message = self._stop_with_savepoint(client, status, job_id, why)
        if outcome == "failed":
            return self._observe(self.current.with_changes(reason=message, stopping=""),
                                 message)
        if outcome == "pending":
            return message
        held = self.current.with_changes(phase=phase, reason=why, submit_pending=False,
                                         observed_generation=record.generation)
        return self._observe(held, f"{phase.lower()} with savepoint {taken.path if taken else ''}")

    def _take_commands(self) -> tuple[str, dict[str, Any]] | None:
        """Queue savepoint requests; return the oldest restart command, kept until done."""
        restart = None
        if not self.watched.commands_waiting():
            return None
        for node, command in self.store.commands(self.name):
            kind, by = command.get("command"), command.get("by", "someone")
            if kind == "restart":
                restart = restart or (node, command)
                continue
            if kind == "savepoint":
                self.savepoints.request(f"requested by {by}")
                self._event(f"savepoint requested by {by}", command=node)
            else:
                self._event(f"ignored unknown command {kind!r} from {by}", command=node)
            self.store.delete_command(self.name, node)
        return restart

    def _requested_restart(
        self, record: JobRecord, client: FlinkClient, status: JobStatus, state: str | None,
        node: str, command: dict[str, Any],
    ) -> str:
        """An operator's restart: terminate attempt N first, then start N+1."""
        from_empty = bool(command.get("fromEmpty"))
        from_path = str(command.get("fromPath") or "")
        by = command.get("by", "someone")
        reason = f"restart requested by {by}" + (
            " from empty state" if from_empty else f" from {from_path}" if from_path else "")
        if from_path:
            problem = rejection(from_path)  # checked by the CLI too; the disk may differ here
            if problem is not None:
                self.store.delete_command(self.name, node)
                self._event(f"refused a restart from {from_path} requested by {by}: {problem}")
                return f"refused a restart from {from_path}: {problem}"
        if state is not None and state not in TERMINAL_STATES:
            if status.stopping != reason:
                self._write(status.with_changes(stopping=reason))
                client.cancel(status.flink_job_id)
                self._event(f"cancelling attempt {status.attempt}: {reason}")
            return f"cancelling attempt {status.attempt}: {reason}"
        if from_path:
            # The operator's word overrides an earlier rejection of the same point.
            status = status.with_changes(rejected_restores=tuple(
                r for r in status.rejected_restores if location(r.path) != location(from_path)))
            number = checkpoint_number(from_path)
            choice = RestoreChoice.of(Checkpoint(
                path=from_path, id=number, timestamp=int(time.time() * 1000),
                kind="checkpoint" if number else "savepoint"))
        elif from_empty:
            choice = RestoreChoice.of(None)
        else:
            choice = self.restore_points.after(record, client, status)
        message = self._start(record, client, status, choice, reason, kind="requested")
        self.store.delete_command(self.name, node)
        return message
