"""`flinksched dev up` (what `make demo` runs) brings the example job to RUNNING without
waiting on a job that waits for a person, runs whatever configs/ holds (ten jobs dropped in),
a second `dev up` is harmless, `dev down` leaves no process of the stack running, and a port
held by a stranger is refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import psutil
import pytest

from common.processes import free_port, group_alive
from scheduler.devstack.javabuild import LISTENER_FACTORY
from tests.browser import chromium
from tests.stack import PRIMARY_PUSHES, PRIMARY_VERSION, REPO, Cluster, outside_ephemeral_ports
from tests.waiting import wait_until
from worker.targets.application.local import own_clusters

pytestmark = pytest.mark.e2e


def _flinksched(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def _recorded_pids(state_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in (state_dir / "pids").glob("*.pid")}


# A whole demo stack started, fourteen jobs run, a TaskManager killed and replaced, all stopped:
# minutes on a machine busy with the rest of the suite (a warm run took 300 s and more).
@pytest.mark.timeout(720)
def test_dev_up_twice_then_down_leaves_nothing_running(
    cluster: Cluster, tmp_path: Path
) -> None:
    config_dir = tmp_path / "configs"
    shutil.copytree(REPO / "configs", config_dir)
    # Outside the ephemeral range: the stack binds them after ZooKeeper and Flink started
    # making outgoing connections, which may be given any free port of that range.
    zk_port, rest_port, rpc_port, metrics_port, _worker_metrics, s3_port = (
        outside_ephemeral_ports(6))
    (config_dir / "clusters.yaml").write_text(
        (config_dir / "clusters.yaml").read_text().replace("8081", str(rest_port))
    )
    for example_file in ("stateful-counter.yaml", "stateful-counter-own.yaml"):
        (config_dir / example_file).write_text(
            (config_dir / example_file).read_text()
            .replace("../build/flinksched-example.jar", cluster.example_jar.as_uri())
        )
    # The Python and SQL examples name their files relative to the repository's configs/.
    for example_file, relative in (("python-click-counter.yaml", "python/click_counter.py"),
                                   ("sql-clicks-per-user.yaml", "sql/clicks_per_user.sql")):
        (config_dir / example_file).write_text(
            (config_dir / example_file).read_text()
            .replace(f"../examples/{relative}", (REPO / "examples" / relative).as_uri()))
    example = (config_dir / "stateful-counter.yaml").read_text()
    # A job that cannot start: `dev up` reports it with its whole reason, without waiting.
    (config_dir / "bad-entry.yaml").write_text(
        example.replace("name: stateful-counter", "name: bad-entry")
        .replace("dev.flinksched.examples.StatefulCounter", "dev.flinksched.examples.NoSuchClass"))
    ports = ["--state-dir", str(tmp_path / "state"), "--config-dir", str(config_dir),
             "--zk-port", str(zk_port), "--rest-port", str(rest_port),
             "--rpc-port", str(rpc_port), "--metrics-port", str(metrics_port),
             "--s3-port", str(s3_port),
             "--workers", "1"]  # the worker's metrics port is the next one
    applications = tmp_path / "state" / "applications"
    try:
        # A deadline no start on a loaded machine reaches: `dev up` ends when every job has
        # settled (the bad one waits for a person), not when it gives up waiting.
        up = _flinksched("dev", "up", "--timeout", "600", *ports, timeout=660)
        assert up.returncode == 0, up.stderr
        assert "not every job is RUNNING yet" not in up.stderr, "no wait on a job that waits " \
            "for a person"
        assert f"http://localhost:{rest_port}" in up.stdout
        assert "stateful-counter" in up.stdout and "Running" in up.stdout
        # The example once more, on a cluster of its own: its JobManager and TaskManager
        # started by the worker, its UI shown.
        own_ui = re.search(r"(http://localhost:\d+) \(stateful-counter-own's own cluster\)",
                           up.stdout)
        assert own_ui is not None and own_ui.group(1) != f"http://localhost:{rest_port}", (
            up.stdout)
        status_lines = _flinksched("dev", "status", *ports).stdout
        assert re.search(r"stateful-counter-own \w{8}\s+running, pid \d+", status_lines), (
            status_lines)
        lines = [line for line in up.stdout.splitlines() if line.startswith("bad-entry is ")]
        # Caught between retries (SubmitFailed) or backing off after several (Recovering).
        assert len(lines) == 1 and re.match(r"bad-entry is (SubmitFailed|Recovering): ",
                                            lines[0]), up.stdout
        assert "dev.flinksched.examples.NoSuchClass" in lines[0], "the whole reason"
        pids = _recorded_pids(tmp_path / "state")
        assert set(pids) == {"zookeeper", "seaweedfs", "jobmanager", "taskmanager", "master",
                             "worker-0"}
        assert f"S3 (SeaweedFS)  http://127.0.0.1:{s3_port} (checkpoints and savepoints in " \
               "s3://flink/" in up.stdout
        # The demo's Flink 2 loads the status listener and pushes to the demo's root; a
        # Flink 1.20 demo is watched by polling, and says so.
        zk = ("--zk", f"127.0.0.1:{zk_port}")
        watched = "watched by push + poll" if PRIMARY_PUSHES else "no status listener: Flink"

        def pushed() -> bool:
            described = _flinksched(*zk, "describe", "stateful-counter").stdout
            return watched in described and f"flink        {PRIMARY_VERSION} (" in described

        wait_until(pushed, 30, f"`describe` to say: {watched}")
        # The demo's portal, in a browser: every job of configs/ listed.
        portal = f"http://127.0.0.1:{metrics_port}/"
        assert f"portal          {portal}" in up.stdout
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(portal)
            listed = {page.get_attribute(f"tr[data-job] >> nth={n}", "data-job")
                      for n in range(page.locator("tr[data-job]").count())}
            assert listed == {"stateful-counter", "stateful-counter-own", "python-click-counter",
                              "sql-clicks-per-user", "bad-entry"}, page.inner_text("main")
            # Between retries or backing off after several, with its whole reason beside it.
            assert page.inner_text('tr[data-job="bad-entry"] .phase') in (
                "SubmitFailed", "Recovering")
            assert "NoSuchClass" in page.inner_text('tr[data-job="bad-entry"] .reason')
            page.screenshot(path=str(tmp_path / "portal-demo.png"))  # kept with the test
        listener = tmp_path / "state" / "flink-lib" / "flinksched-listener.jar"
        assert listener.exists() is PRIMARY_PUSHES
        linked = listener.lstat().st_ino if PRIMARY_PUSHES else 0

        again = _flinksched("dev", "up", "--no-wait", *ports)
        assert again.returncode == 0, again.stderr
        assert _recorded_pids(tmp_path / "state") == pids, "a second `dev up` started nothing"
        assert (listener.lstat().st_ino if PRIMARY_PUSHES else 0) == linked, (
            "the running JobManager's lib dir untouched")

        # Ten more YAML files dropped into configs/ while the demo runs: all of them run.
        for number in range(10):
            (config_dir / f"more-{number}.yaml").write_text(
                example.replace("name: stateful-counter", f"name: more-{number}")
                .replace("parallelism: 2", "parallelism: 1"))
        wanted = {"stateful-counter", "stateful-counter-own", "python-click-counter",
                  "sql-clicks-per-user", *(f"more-{number}" for number in range(10))}
        seen: dict[str, str] = {}

        def all_running() -> bool:
            status = _flinksched(*zk, "status", "-o", "json")
            seen.clear()
            seen.update({row["name"]: row["phase"] for row in json.loads(status.stdout)})
            return all(seen.get(name) == "Running" for name in wanted)

        try:
            wait_until(all_running, 180, "the examples and ten more RUNNING")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; phases: {seen}") from None

        def checkpoints_on_s3() -> bool:
            rows = json.loads(_flinksched(*zk, "status", "-o", "json").stdout)
            kept = {row["name"]: (row["lastCheckpoint"] or {}).get("path", "") for row in rows}
            return all(kept[name].startswith("s3://flink/") for name in (
                "stateful-counter", "stateful-counter-own"))

        wait_until(checkpoints_on_s3, 60, "the examples' checkpoints in the stack's bucket")

        # The TaskManager's JVM dies (as a job's fatal error ends it): it is started again
        # and registers, where a cluster with no TaskManager would run no job again.
        rest = f"http://localhost:{rest_port}"
        [before] = [tm["id"] for tm in httpx.get(f"{rest}/taskmanagers").json()["taskmanagers"]]
        [jvm] = [child for child in psutil.Process(pids["taskmanager"]).children(recursive=True)
                 if child.name() == "java"]
        jvm.kill()

        def registered_anew() -> bool:
            try:  # a JobManager busy with the lost TaskManager's jobs may answer late
                found = httpx.get(f"{rest}/taskmanagers", timeout=5).json()["taskmanagers"]
            except httpx.HTTPError:
                return False
            return [tm["id"] for tm in found] not in ([], [before])

        wait_until(registered_anew, 90, "a new TaskManager registered in the dead one's place")
        assert _recorded_pids(tmp_path / "state")["taskmanager"] == pids["taskmanager"]
        # Retried with backoff (SubmitFailed, then Submitting again), never running.
        assert seen["bad-entry"] in ("SubmitFailed", "Submitting", "Recovering"), seen
    finally:
        down = _flinksched("dev", "down", *ports)
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert group_alive(pid) == [], f"{name} (process group {pid}) is still running"
    assert own_clusters(applications) == [], "the job's own cluster is torn down too"
    assert "own cluster " in down.stdout
    assert not list((tmp_path / "state" / "pids").glob("*.pid"))


def test_dev_up_refuses_a_port_held_by_a_process_it_did_not_start(tmp_path: Path) -> None:
    """A JobManager left on the REST port by someone else is never used nor started beside."""
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        up = _flinksched("dev", "up", "--state-dir", str(tmp_path / "state"),
                         "--zk-port", str(free_port()), "--rest-port", str(port),
                         "--rpc-port", str(free_port()), "--metrics-port", str(free_port()),
                         timeout=60)
    assert up.returncode == 2
    assert f"port {port} (Flink REST) is held by pid {os.getpid()}" in up.stdout + up.stderr
    assert not (tmp_path / "state" / "pids").exists(), "nothing was started"


@pytest.mark.skipif(not PRIMARY_PUSHES, reason=f"Flink {PRIMARY_VERSION} has no job status "
                    "listeners to build one for")
def test_build_listener_writes_a_jar_with_the_factory_flink_loads(tmp_path: Path) -> None:
    built = _flinksched("dev", "build-listener", "--out-dir", str(tmp_path))
    assert built.returncode == 0, built.stderr
    jar = Path(built.stdout.strip())
    assert jar == tmp_path / "flinksched-listener.jar"
    with zipfile.ZipFile(jar) as archive:
        assert f"{LISTENER_FACTORY.replace('.', '/')}.class" in archive.namelist()
