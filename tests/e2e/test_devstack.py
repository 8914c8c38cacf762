"""`flinksched dev up` (what `make demo` runs) brings the example job to RUNNING, a second
`dev up` is harmless, and `dev down` leaves no process of the stack running."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.devstack.services import free_port, group_alive
from tests.stack import REPO, Cluster

pytestmark = pytest.mark.e2e


def _flinksched(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def _recorded_pids(state_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in (state_dir / "pids").glob("*.pid")}


def test_dev_up_twice_then_down_leaves_nothing_running(
    cluster: Cluster, tmp_path: Path
) -> None:
    config_dir = tmp_path / "configs"
    shutil.copytree(REPO / "configs", config_dir)
    zk_port, rest_port = free_port(), free_port()
    (config_dir / "clusters.yaml").write_text(
        (config_dir / "clusters.yaml").read_text().replace("8081", str(rest_port))
    )
    (config_dir / "stateful-counter.yaml").write_text(
        (config_dir / "stateful-counter.yaml").read_text()
        .replace("../build/flinksched-example.jar", cluster.example_jar.as_uri())
    )
    ports = ["--state-dir", str(tmp_path / "state"), "--config-dir", str(config_dir),
             "--zk-port", str(zk_port), "--rest-port", str(rest_port),
             "--rpc-port", str(free_port()), "--metrics-port", str(free_port()),
             "--workers", "1"]
    try:
        up = _flinksched("dev", "up", *ports)
        assert up.returncode == 0, up.stderr
        assert f"http://localhost:{rest_port}" in up.stdout
        assert "stateful-counter" in up.stdout and "Running" in up.stdout
        pids = _recorded_pids(tmp_path / "state")
        assert set(pids) == {"zookeeper", "jobmanager", "taskmanager", "master", "worker-0"}

        again = _flinksched("dev", "up", "--no-wait", *ports)
        assert again.returncode == 0, again.stderr
        assert _recorded_pids(tmp_path / "state") == pids, "a second `dev up` started nothing"

        status = _flinksched("--zk", f"127.0.0.1:{zk_port}", "status", "-o", "json")
        assert [row["phase"] for row in json.loads(status.stdout)] == ["Running"]
    finally:
        down = _flinksched("dev", "down", *ports)
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert group_alive(pid) == [], f"{name} (process group {pid}) is still running"
    assert not list((tmp_path / "state" / "pids").glob("*.pid"))
