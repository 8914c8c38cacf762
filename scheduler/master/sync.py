"""The leader's config sync: the config directory (or git checkout) into the desired job
records in the store, through the same plan `flinksched plan` prints.

Written only as the leader (every write is fenced by its election node); the store is an
interface, so a sync is tested against the in-memory store in milliseconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError
from common.spec.configdir import ConfigLoader
from common.store.interfaces import DesiredStateStore
from common.store.records import Fence, JobRecord, Phase
from common.telemetry import leaderview
from scheduler.master.changes import (
    ADDED,
    CHANGED,
    KEPT,
    REMOVING,
    Change,
    Plan,
    RecordMemo,
    RemovalGuard,
    build_plan,
    job_errors,
)
from scheduler.master.changes import REMOVED as PLAN_REMOVED
from scheduler.master.gitsource import GitMirror, head_commit

logger = logging.getLogger(__name__)

RECORDS_REREAD = 60.0


class ConfigSync:
    def __init__(self, store: DesiredStateStore, master_id: str, config_dir: Path,
                 removal: RemovalGuard | None = None, removal_grace: float = 600.0,
                 git: GitMirror | None = None,
                 changed: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.id = master_id
        self.config_dir = config_dir
        self.removal = removal or RemovalGuard()
        self.removal_grace = removal_grace
        self.git = git
        self.changed = changed  # jobs were added, changed or removed: assign now
        self.loader = ConfigLoader()
        self.memo = RecordMemo()
        self.records: dict[str, JobRecord] | None = None  # the leader's own writes, cached
        self._records_read = 0.0
        self.commit = ""
        self._checkout: Path | None = None  # the resolved config dir the commit was read in
        self._config_state: dict[str, object] | None = None  # last written to the store
        self.job_errors: dict[str, str] = {}
        self._last_blocked = ""

    def forget(self) -> None:
        """Just became leader: read the records again and publish the config state anew."""
        self._config_state = None
        self.records = None

    def run(self, fence: Fence) -> str:
        """One sync, writing as the leader that holds `fence`."""
        if self.git is not None and not self.git.commit:
            return "waiting for the first checkout of the config repository"
        checkout = self.config_dir.resolve()  # a git-sync sidecar swaps a link to a worktree
        config = self.loader.load([self.config_dir])
        if self.git is not None:
            self.commit = self.git.commit
        elif self.loader.parsed or checkout != self._checkout:
            # Only when files changed: `git rev-parse` is a process, the sync runs every second.
            self.commit, self._checkout = head_commit(checkout), checkout
        current = self._current_records()
        allowance = self.store.removal_allowed()
        guard = RemovalGuard(self.removal.max_share, allowed=allowance is not None)
        plan = build_plan(config, current, commit=self.commit, guard=guard, memo=self.memo)
        writes = [(c.record, c.kind == ADDED, self._event_text(c))
                  for c in plan.changes if c.record is not None]
        self.records = None  # until the writes are known to have landed
        self.store.put_jobs(writes, fence)
        self.records = {**current, **{record.name: record for record, _, _ in writes}}
        if allowance is not None and plan.of_kind(PLAN_REMOVED):
            self.store.consume_removal_allowance(fence)
            logger.warning("master %s: removal allowed by %s", self.id, allowance.get("by"))
        deleted = self._delete_removed(plan, current, fence)
        errors = job_errors(config, current)
        self._publish_config_state(config.errors, errors, plan, fence)
        self.job_errors = errors
        leaderview.LEADER_VIEW.update(config_errors=len(config.errors),
                                   removal_blocked=bool(plan.removal_blocked),
                                   last_sync=time.time())
        changed = [c for c in plan.changes if c.kind in (ADDED, CHANGED, PLAN_REMOVED, "restored")]
        for change in changed[:20]:
            logger.info("master %s: job %s %s", self.id, change.name, self._event_text(change))
        if changed:
            self.changed()
        parts = [f"{n} {kind}" for kind, n in sorted(plan.counts().items())
                 if kind not in ("unchanged", REMOVING)]
        parts += [f"deleted {name}" for name in deleted]
        if plan.removal_blocked:
            parts.append(f"REMOVAL WITHHELD: {plan.removal_blocked}")
            if plan.removal_blocked != self._last_blocked:
                logger.warning("master %s: NOT removing %s: %s", self.id,
                               ", ".join(c.name for c in plan.of_kind(KEPT)[:20]),
                               plan.removal_blocked)
        self._last_blocked = plan.removal_blocked
        if config.errors:
            parts.append(f"{len(config.errors)} config error(s), first: {config.errors[0]}")
        return "; ".join(parts)

    def _current_records(self) -> dict[str, JobRecord]:
        """Job records as ZooKeeper holds them. Only the leader writes them, so it keeps its
        own writes instead of reading 2,000 nodes a second; read again every minute anyway,
        after any failed write, and on becoming leader. A record read again unchanged keeps
        the object already held (and its validated spec): 5,000 new copies a minute would
        be validated again and, surviving long enough, make every full garbage collection
        of the master's heap scan them (seconds on a loaded machine, during which nothing
        in the process, a scrape of /metrics included, runs)."""
        if self.records is None or time.monotonic() - self._records_read > RECORDS_REREAD:
            held = self.records or {}
            self.records = {name: held[name] if held.get(name) == record else record
                            for name, record in self.store.jobs().items()}
            self._records_read = time.monotonic()
        return dict(self.records)

    def _event_text(self, change: Change) -> str:
        record = change.record
        if record is None:
            return change.action
        origin = change.source + (f" (commit {record.commit[:12]})" if record.commit else "")
        if change.kind == ADDED:
            return f"generation 1 from {origin}: {change.action}"
        if change.kind == CHANGED:
            fields = "; ".join(str(f) for f in change.fields[:10])
            return f"generation {record.generation} from {origin}: {fields}; {change.action}"
        if change.kind == PLAN_REMOVED:
            return f"no longer in the config (was {record.source}): {change.action}"
        if change.kind == "restored":
            return f"back in the config at {origin}: {change.action}"
        return ""  # moved to another file or line: no event

    def _delete_removed(self, plan: Plan, current: dict[str, JobRecord],
                        fence: Fence) -> list[str]:
        """Delete the metadata of removed jobs once stopped and past the grace period."""
        due = [current[c.name] for c in plan.of_kind(REMOVING)
               if time.time() - current[c.name].removed_at >= self.removal_grace]
        if not due:
            return []
        statuses = self.store.statuses([r.name for r in due])
        deleted = []
        for record in due:
            status = statuses.get(record.name)
            stopped = status is None or status.attempt == 0 or status.phase in (Phase.REMOVED,
                                                                               Phase.FINISHED)
            if not stopped:
                logger.warning("master %s: job %s was removed from the config %.0fs ago but "
                               "is not stopped yet (%s); its metadata stays", self.id,
                               record.name, time.time() - record.removed_at,
                               status.phase if status else "no status")
                continue
            final = status.last_checkpoint.path if status and status.last_checkpoint else "none"
            self.store.delete_job(record.name, fence)
            if self.records is not None:  # replaced, never changed: readers hold snapshots
                self.records = {k: v for k, v in self.records.items() if k != record.name}
            logger.info("master %s: deleted job %s (removed from the config); final "
                        "savepoint or checkpoint: %s", self.id, record.name, final)
            deleted.append(record.name)
        return deleted

    def _publish_config_state(self, errors: list[ConfigError], by_job: dict[str, str],
                              plan: Plan, fence: Fence) -> None:
        """The sync's findings for `status` and `describe`; written only when they change."""
        state: dict[str, object] = {
            "errors": [e.to_json() for e in errors[:500]],
            "errorCount": len(errors),
            "jobErrors": by_job,
            "commit": self.commit,
            "removalBlocked": plan.removal_blocked,
            "configDir": str(self.config_dir),
        }
        if state != self._config_state:
            self.store.put_config_state(state, fence)
            self._config_state = state

