"""The invariants of a chaos run, sampled from Flink and ZooKeeper directly (never through
the proxies the faults go through) several times a second:

- never two RUNNING Flink jobs for one flinksched job;
- every restore point is at least the newest completed checkpoint seen before the restart
  began (Flink numbers checkpoints on from the one it restored, so ids compare);
- no job disappears from ZooKeeper;
- and, for the recovery bound, whether every job is healthy: its current attempt RUNNING in
  Flink as the only live attempt, its status Running, its ownership held by the worker the
  status names, and that worker registered and sound (alive, not cut off).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from kazoo.client import KazooClient

from common.errors import StoreError
from common.flink.jobids import attempt_of, flink_job_id
from common.store.records import Phase
from common.store.session import SessionKeeper
from common.store.zookeeper import Store

SAMPLE_INTERVAL = 0.25
CHECKPOINT_INTERVAL = 1.0  # per running attempt; Flink caches the statistics for 3 s anyway


@dataclass
class View:
    names: set[str]
    statuses: dict[str, Any]
    owners: dict[str, tuple[str, int] | None]
    workers: set[str]


@dataclass
class Findings:
    duplicates: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    regressions: list[str] = field(default_factory=list)
    vanished: set[str] = field(default_factory=set)
    restores_checked: int = 0
    restores_unjudgeable: int = 0  # restarted attempts that ended before reporting a restore
    samples: int = 0


class Checker:
    def __init__(self, rest_url: str, zk_hosts: str, root: str, jobs: list[str],
                 sound_workers: Callable[[], set[str]]) -> None:
        self.rest_url = rest_url
        self.sound_workers = sound_workers
        self.jobs = sorted(jobs)
        self.found = Findings()
        self._http = httpx.Client(base_url=rest_url, timeout=2.0)
        def client() -> KazooClient:
            return KazooClient(hosts=zk_hosts, timeout=10.0,
                               connection_retry={"max_tries": -1, "delay": 0.2, "max_delay": 1})

        self._store = Store(client(), root)
        self._store.zk.start(timeout=30)
        # A wiped or rolled-back ensemble refuses the old session, as for the processes.
        self._keeper = SessionKeeper(self._store, zk_hosts, patience=5.0, make_client=client)
        self._keeper.start()
        # Newest completed checkpoint seen per job and attempt: (id, completion time in ms).
        self._completed: dict[str, dict[int, tuple[int, int]]] = {}
        self._checked: set[tuple[str, int]] = set()  # attempts whose restore point was judged
        self._polled: dict[str, float] = {}  # Flink job id -> when its checkpoints were read
        self.healthy_at: float | None = None  # start of the current all-healthy streak
        self.sampled_at = 0.0  # start of the newest sample
        self._seen: set[str] = set()  # jobs seen in ZooKeeper so far
        self._running: set[tuple[str, int]] = set()  # attempts seen RUNNING
        self._ended: set[tuple[str, int]] = set()  # of those, attempts Flink no longer runs
        self.owners: dict[str, str] = {}  # job -> the worker its status names, last sample
        self.unhealthy: dict[str, str] = {}  # why each job was not healthy at the last sample
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-checker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._keeper.stop()
        self._stop.set()
        self._thread.join(10)
        self._http.close()
        self._store.zk.stop()
        self._store.zk.close()

    def recovered_at(self, healed: float) -> float | None:
        """Since when every job has been healthy, asked at or after `healed` (None: not all
        are, or no sample was taken since)."""
        with self._lock:
            if self.healthy_at is None or self.sampled_at < healed:
                return None
            return self.healthy_at

    def leader_id(self) -> str | None:
        """The current leader, as ZooKeeper says (None: none, or ZooKeeper does not answer)."""
        try:
            return self._store.leader_id()
        except StoreError:
            return None

    def spoiled(self, name: str, attempt: int, usable_id: int | None) -> None:
        """The chaos broke this attempt's checkpoints past `usable_id` (None: all of them): a
        restore is judged against the newest checkpoint that can still be read."""
        with self._lock:
            completed = self._completed.setdefault(name, {})
            if usable_id is None:
                completed.pop(attempt, None)
            elif attempt in completed and completed[attempt][0] > usable_id:
                completed[attempt] = (usable_id, completed[attempt][1])

    def data_lost(self) -> None:
        """ZooKeeper lost or rolled back its data: jobs vanish until the leader syncs them again,
        which is no finding (the invariant is that flinksched never drops a job itself)."""
        with self._lock:
            self._seen.clear()

    def unjudged_restores(self) -> list[tuple[str, int]]:
        """Restarted attempts still live whose restore point was not judged yet."""
        with self._lock:
            return sorted(a for a in self._running - self._ended
                          if a[1] > 1 and a not in self._checked)

    # -- sampling --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            at = time.monotonic()
            sound = self.sound_workers()
            listing = self._flink_listing()
            statuses = self._zk_view()
            reasons = self._judge(listing, statuses, sound)
            with self._lock:
                self.sampled_at = at
                self.found.samples += 1
                self.unhealthy = reasons
                if reasons:
                    self.healthy_at = None
                elif self.healthy_at is None:
                    self.healthy_at = at

    def _get(self, path: str) -> Any:
        try:
            answer = self._http.get(path)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        try:
            return answer.json()
        except ValueError:
            return None

    def _flink_listing(self) -> dict[str, dict[int, str]] | None:
        """Per flinksched job, its attempts Flink knows and their states (None: no answer)."""
        found = self._get("/jobs")
        if found is None:
            return None
        attempts: dict[str, dict[int, str]] = {name: {} for name in self.jobs}
        for job in found.get("jobs", []):
            for name in self.jobs:
                attempt = attempt_of(name, str(job["id"]))
                if attempt is not None:
                    attempts[name][attempt] = str(job["status"])
        return attempts

    def _zk_view(self) -> View | None:
        try:
            names = set(self._store.job_names())
            statuses = self._store.statuses(sorted(names))
            owners = {name: self._store.owner(name) for name in self.jobs}
            workers = set(self._store.workers())
        except StoreError:
            return None
        return View(names, statuses, owners, workers)

    def _judge(self, listing: dict[str, dict[int, str]] | None, view: View | None,
               sound: set[str]) -> dict[str, str]:
        reasons: dict[str, str] = {}
        if listing is None:
            reasons["*"] = "Flink does not answer"
        else:
            for name, attempts in listing.items():
                running = sorted(a for a, state in attempts.items() if state == "RUNNING")
                if len(running) > 1:
                    ids = tuple(flink_job_id(name, a) for a in running)
                    with self._lock:
                        self.found.duplicates.add((name, ids))
                for attempt in running:
                    self._running.add((name, attempt))
                    self._checkpoints(name, attempt)
                alive = {a for a, state in attempts.items()
                         if state not in ("FAILED", "CANCELED", "FINISHED")}
                with self._lock:
                    # A restarted attempt that ended (another fault) before Flink reported a
                    # restore point or a checkpoint of its own added no state; the next
                    # attempt's restore is judged instead.
                    self._ended.update(a for a in self._running
                                       if a[0] == name and a[1] not in alive)
                    self.found.restores_unjudgeable = sum(
                        1 for a in self._ended if a[1] > 1 and a not in self._checked)
        if view is None:
            reasons["*"] = "ZooKeeper does not answer"
            return reasons
        with self._lock:
            self.found.vanished.update(self._seen - view.names)
            self._seen.update(view.names.intersection(self.jobs))
            self.owners = {name: status.worker for name, status in view.statuses.items()}
        if listing is None:
            return reasons
        for name in self.jobs:
            status, owner = view.statuses.get(name), view.owners.get(name)
            live = sorted(a for a, state in listing[name].items()
                          if state not in ("FAILED", "CANCELED", "FINISHED"))
            if status is None or status.phase != Phase.RUNNING:
                reasons[name] = f"status {status.phase if status else 'missing'}"
            elif live != [status.attempt] or listing[name].get(status.attempt) != "RUNNING":
                reasons[name] = f"Flink attempts {listing[name]}, status attempt {status.attempt}"
            elif owner is None or owner[0] != status.worker:
                reasons[name] = f"status names {status.worker or 'nobody'}, owner is {owner}"
            elif status.worker not in view.workers or status.worker not in sound:
                reasons[name] = f"owned by {status.worker}, which is gone or cut off"
        return reasons

    def _checkpoints(self, name: str, attempt: int) -> None:
        job_id = flink_job_id(name, attempt)
        now = time.monotonic()
        if now - self._polled.get(job_id, 0.0) < CHECKPOINT_INTERVAL:
            return
        self._polled[job_id] = now
        stats = self._get(f"/jobs/{job_id}/checkpoints")
        latest = (stats or {}).get("latest") or {}
        completed, restored = latest.get("completed"), latest.get("restored")
        if completed:
            newest = (int(completed["id"]), int(completed["latest_ack_timestamp"]))
            self._completed.setdefault(name, {})[attempt] = max(
                newest, self._completed.get(name, {}).get(attempt, (0, 0)))
        if (completed or restored) and attempt > 1 and (name, attempt) not in self._checked:
            # Flink reported the restore, or the attempt has checkpointed itself (so a restore
            # would be in the statistics by now): its restore point can be judged.
            with self._lock:
                self._checked.add((name, attempt))
            self._judge_restore(name, attempt, restored)

    def _judge_restore(self, name: str, attempt: int, restored: dict[str, Any] | None) -> None:
        details = self._get(f"/jobs/{flink_job_id(name, attempt)}") or {}
        began = int(details.get("start-time", 0))
        earlier = [(cid, at) for a, (cid, at) in self._completed.get(name, {}).items()
                   if a < attempt and at < began]
        with self._lock:
            self.found.restores_checked += 1
            if not earlier:
                return
            newest_id = max(cid for cid, _ in earlier)
            restored_id = int(restored["id"]) if restored else None
            if restored_id is None or restored_id < newest_id:
                self.found.regressions.append(
                    f"{name} attempt {attempt} restored "
                    f"{'nothing' if restored_id is None else f'checkpoint {restored_id}'}, "
                    f"but checkpoint {newest_id} had completed before it started")
