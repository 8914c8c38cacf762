"""The local runtime: the leading master starts `flinksched worker` processes itself and
replaces any that die. Workers outlive the master that started them; a new leader counts
them by their registration in ZooKeeper and keeps the pool at size."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from common.store.records import WorkerInfo

logger = logging.getLogger(__name__)

REGISTRATION_GRACE = 30.0  # a started worker counts before it registers, for this long


class LocalRuntime:
    name = "local"

    def __init__(self, worker_argv: Sequence[str], slots: int, log_dir: Path,
                 id_prefix: str = "", env: Mapping[str, str] | None = None) -> None:
        self.worker_argv = list(worker_argv)  # `... flinksched --zk ... --root ...` (no verb)
        self.env = {**os.environ, **(env or {})}  # secrets travel here, never in argv
        self.slots = slots
        self.log_dir = log_dir
        self.id_prefix = id_prefix or socket.gethostname()
        self.host = socket.gethostname()
        self.started: dict[str, tuple[subprocess.Popen[bytes], float]] = {}

    def reconcile(
        self, wanted: int, workers: Mapping[str, WorkerInfo], busy: set[str]
    ) -> str:
        self._reap()
        pending = [w for w, (_, at) in self.started.items()
                   if w not in workers and time.monotonic() - at < REGISTRATION_GRACE]
        have = len(workers) + len(pending)
        actions = []
        for _ in range(wanted - have):
            actions.append(f"started worker {self._start()}")
        if have > wanted:
            for worker_id in self._surplus(have - wanted, workers, busy):
                actions.append(f"stopped surplus worker {worker_id}")
        return ", ".join(actions)

    def _start(self) -> str:
        worker_id = f"{self.id_prefix}-{uuid.uuid4().hex[:6]}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{worker_id}.log").open("ab") as log:
            process = subprocess.Popen(
                [*self.worker_argv, "worker", "--id", worker_id, "--slots", str(self.slots)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,  # workers outlive the master that started them
            )
        self.started[worker_id] = (process, time.monotonic())
        logger.info("started worker %s (pid %d)", worker_id, process.pid)
        return worker_id

    def _surplus(self, count: int, workers: Mapping[str, WorkerInfo],
                 busy: set[str]) -> list[str]:
        """Idle workers on this host to stop, the youngest first."""
        idle = [w for w in workers.values() if w.id not in busy and w.host == self.host]
        stopped = []
        for info in sorted(idle, key=lambda w: -w.started)[:count]:
            try:
                os.kill(info.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            stopped.append(info.id)
        return stopped

    def _reap(self) -> None:
        for worker_id, (process, _) in list(self.started.items()):
            if process.poll() is not None:
                logger.warning("worker %s exited with %s", worker_id, process.returncode)
                del self.started[worker_id]

    def close(self) -> None:
        """Leave the workers running: they keep supervising their jobs without a master."""
        self.started.clear()
