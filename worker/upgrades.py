"""Carrying a job to a new generation of its spec, by its `upgradeMode`.

- savepoint: stop with a savepoint and resubmit from it; when the attempt is not healthy (a
  savepoint would fail or hang) fall back to last-state.
- last-state: cancel and resubmit from the newest checkpoint.
- stateless: cancel and start from empty state.

A generation that changes nothing a running attempt was submitted with (labels, restart
policy, savepoint schedule) is applied in place, without a restart. A mixin of JobSupervisor.
"""

from __future__ import annotations

import time

from common.flink import TERMINAL_STATES, FlinkClient
from common.records import RUNNING, JobRecord, JobStatus
from worker.operations import OperatorActions
from worker.restorecheck import RestoreChoice
from worker.savepoints import NOT_RUNNING_YET

UPGRADE_RETRY = 60.0  # after a failed stop-with-savepoint, the old attempt keeps running


class Upgrades(OperatorActions):
    upgrade_retry_at: float = 0.0

    def _upgrade_due(self, record: JobRecord, status: JobStatus) -> bool:
        """The current attempt was submitted with another spec than the record's. An attempt
        that recorded no hash (started by an older flinksched) is upgraded on any new
        generation: a needless restart is better than a change silently not applied."""
        if not status.submit_hash:
            return record.generation > status.observed_generation
        return status.submit_hash != record.submit_hash

    def _apply_in_place(self, record: JobRecord, status: JobStatus) -> JobStatus:
        """A new generation the attempt does not depend on: just record it as observed."""
        if record.generation == status.observed_generation or self._upgrade_due(record, status):
            return status
        self._write(status.with_changes(observed_generation=record.generation))
        self._event(f"generation {record.generation} applied without a restart")
        return self.current

    def _upgrade(self, record: JobRecord, client: FlinkClient, status: JobStatus,
                 state: str | None, job_id: str) -> str | None:
        """One step of the upgrade; None when it must wait and the cycle goes on as usual."""
        mode = str(record.spec["job"].get("upgradeMode", "savepoint"))
        why = f"upgrade to generation {record.generation} ({mode})"
        healthy = state == "RUNNING" and status.phase == RUNNING
        if mode == "savepoint" and (healthy or self.pending_stop is not None):
            if time.monotonic() < self.upgrade_retry_at:
                return None
            outcome, taken, message = self._stop_with_savepoint(client, status, job_id, why)
            if outcome == "pending":
                return message
            if outcome == "failed":
                # Tasks still deploying pass in a moment; any other failure is retried later.
                wait = 1.0 if any(h in message for h in NOT_RUNNING_YET) else UPGRADE_RETRY
                self.upgrade_retry_at = time.monotonic() + wait
                self._observe(self.current.with_changes(stopping="", reason=message), message)
                return f"{message}; attempt {status.attempt} keeps running, retrying in {wait:g}s"
            if taken is not None:
                return self._start(record, client, self.current, RestoreChoice.of(taken), why,
                                   kind="upgrade")
        if state is not None and state not in TERMINAL_STATES:
            if status.stopping != why:
                self._write(status.with_changes(stopping=why))
                client.cancel(job_id)
                self._event(f"cancelling attempt {status.attempt}: {why}"
                            + ("" if mode != "savepoint" else
                               f" from the newest checkpoint, the attempt being {state}"))
            return f"cancelling attempt {status.attempt}: {why}"
        choice = RestoreChoice.of(None) if mode == "stateless" else self.restore_points.after(
            record, client, self.current)
        return self._start(record, client, self.current, choice, why, kind="upgrade")
