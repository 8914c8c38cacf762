"""The real local stack for benchmarks, started the way the test fixtures start it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.processes import free_port
from common.store.records import Checkpoint, JobRecord, JobStatus, Phase
from common.store.zookeeper import Store
from scheduler.devstack.flinkhome import DEFAULT_VERSION
from scheduler.devstack.services import port_open, wait_for
from scheduler.devstack.stack import DevStack, StackConfig
from tests.stack import PUSH_ROOT, PUSH_SETTINGS, Cluster, ControlPlane
from tests.zkserver import store_on


@contextmanager
def local_stack(flink: bool = True, keep: bool = False,
                s3: bool = False) -> Iterator[tuple[Cluster, ControlPlane]]:
    """ZooKeeper (and Flink, and with `s3` an S3 server its cluster and workers reach) in a
    temporary directory; `keep` leaves its logs for a look. Flink's status listener pushes to
    PUSH_ROOT: the control plane yielded (its own root) sees a cluster without a listener,
    one under PUSH_ROOT a cluster with it."""
    with local_devstack(flink, keep, s3) as (_, cluster, control):
        yield cluster, control


@contextmanager
def local_devstack(flink: bool = True, keep: bool = False, s3: bool = False
                   ) -> Iterator[tuple[DevStack, Cluster, ControlPlane]]:
    """`local_stack`, with the stack itself (to kill and start its JobManager)."""
    work = Path(tempfile.mkdtemp(prefix="flinksched-bench-"))
    stack = DevStack(StackConfig(state_dir=work / "stack", zk_port=free_port(),
                                 rest_port=free_port(), rpc_port=free_port(), workers=0,
                                 push_root=PUSH_ROOT, push_settings=PUSH_SETTINGS,
                                 s3_port=free_port() if s3 else 0))
    stack.state_dir.mkdir(parents=True)
    control: ControlPlane | None = None
    try:
        jar = stack.prepare()
        stack.start_zookeeper()
        stack.start_s3()
        if flink:
            stack.start_flink()
        cluster = Cluster(stack.config.zk_hosts, stack.config.rest_url, jar, stack.state_dir,
                          flink_home=stack.flink_home, s3=stack.config.s3())
        control = ControlPlane(cluster, work / "control")
        control.workdir.mkdir()
        yield stack, cluster, control
    finally:
        if control is not None:
            control.stop_all()
            if flink:
                control.cluster.cancel_all()
        stack.down()
        if keep:
            print(f"logs and state kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@contextmanager
def zk_store(hosts: str, root: str, start_timeout: float = 10.0) -> Iterator[Store]:
    """A started client on the bench's ZooKeeper, as a Store, stopped afterwards."""
    # Retrying forever: a loaded machine may miss a heartbeat, the benchmark must not die of it.
    with store_on(hosts, root, start_timeout, connection_retry={"max_tries": -1, "delay": 0.2,
                                                                "max_delay": 1}) as store:
        yield store


SPEC = {"job": {"jarURI": "file:///jobs/app.jar", "state": "running"}}
CLUSTER = {"metadata": {"name": "default"}, "spec": {"restUrl": "http://localhost:8081"}}


def populate_jobs(store: Store, jobs: int) -> None:
    """`jobs` job records, each RUNNING with a checkpoint, as a leader and workers leave them."""
    store.ensure_layout()
    fence = store.join_election("bench")
    names = [f"job-{index:05d}" for index in range(jobs)]
    store.put_jobs([(JobRecord(name, SPEC, CLUSTER, 1, "h", "bench"), True, "") for name in names],
                   fence)
    now = time.time()
    status = JobStatus(phase=Phase.RUNNING, flink_job_id="0" * 32, attempt=1, observed_generation=1,
                       since=now, last_checkpoint=Checkpoint("file:///c/chk-1", 1,
                                                             int(now * 1000)))
    data = json.dumps(status.to_json()).encode()
    pending = [store.zk.set_async(store.job_path(name) + "/status", data) for name in names]
    for result in pending:
        result.get()


RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, report: dict[str, Any]) -> Path:
    """Print the report and keep it as bench/results/<date>-<name>.json."""
    text = json.dumps(report, indent=2) + "\n"
    print(text, end="")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y-%m-%d')}-{name}.json"
    path.write_text(text)
    print(f"written to {path}")
    return path


def zk_mntr(hosts: str) -> dict[str, str]:
    """ZooKeeper's own counters (the `mntr` four-letter word)."""
    host, port = hosts.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:  # a loaded server
        sock.sendall(b"mntr")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return dict(line.split("\t", 1) for line in data.decode().splitlines() if "\t" in line)


def zk_packets_received(hosts: str) -> int:
    """How many requests ZooKeeper received so far."""
    return int(zk_mntr(hosts)["zk_packets_received"])


def exit_on_sigterm() -> None:
    """A terminated benchmark unwinds its context managers, so no process it started stays."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory now (VmRSS) or at its peak so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def flink_simulator(checkpoint_ms: int = 30_000,
                    flink_version: str = DEFAULT_VERSION) -> Iterator[str]:
    """bench/flinksim in its own process, answering as `flink_version`; yields its REST URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.flinksim", "--port", str(port),
                                "--checkpoint-ms", str(checkpoint_ms),
                                "--flink-version", flink_version],
                               cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for(lambda: port_open(port), 30):
            raise RuntimeError("the Flink simulator did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
