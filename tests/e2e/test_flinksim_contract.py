"""The Flink REST simulator cannot drift from Flink: the same client calls run against a real
session cluster and against bench/flinksim told to answer as the same Flink version, and their
answers must agree in outcome and shape (every field the simulator sends, Flink sends too,
with the same JSON type). Run on a cluster of each supported major version."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.stackutil import flink_simulator
from common.errors import JarMissing, JobAlreadySubmitted
from common.flink.client import FlinkClient
from common.flink.jobids import flink_job_id
from common.flink.versions import CHECKPOINT_DIR
from tests.stack import Cluster, FlinkUnderTest, on_each_flink
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def simulator(flink: FlinkUnderTest) -> Iterator[str]:
    """The simulator, answering as the version of the cluster the test runs on."""
    with flink_simulator(checkpoint_ms=500, flink_version=flink.version) as url:
        yield url


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        if not value:
            return []
        # Flink lists in-progress checkpoints first, without the fields of completed ones.
        done = [v for v in value if isinstance(v, dict) and v.get("status") == "COMPLETED"]
        return [shape(done[0] if done else value[0])]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "string"


def assert_within(simulated: Any, real: Any, path: str = "") -> None:
    """Everything the simulator answers, Flink answers too, with the same JSON type."""
    if simulated == "null" or real == "null":
        return  # absent for now (no checkpoint yet, no failure): not a difference of shape
    if isinstance(simulated, dict):
        assert isinstance(real, dict), f"{path}: Flink answers {real}, the simulator an object"
        for key, value in simulated.items():
            assert key in real, f"{path}.{key}: the simulator sends a field Flink does not"
            assert_within(value, real[key], f"{path}.{key}")
    elif isinstance(simulated, list):
        assert isinstance(real, list), f"{path}: Flink answers {real}, the simulator a list"
        if simulated and real:
            assert_within(simulated[0], real[0], f"{path}[0]")
    else:
        assert simulated == real, f"{path}: Flink answers a {real}, the simulator a {simulated}"


class Side:
    """One cluster, real or simulated, driven through flinksched's own client."""

    def __init__(self, url: str, cluster: Cluster, tag: str) -> None:
        self.url = url
        self.client = FlinkClient(url)
        self.jar_id = self.client.upload_jar(cluster.example_jar, "flinksched-example.jar")
        self.job_id = flink_job_id(f"contract-{tag}", 1)
        self.body = {"jobId": self.job_id, "entryClass": "dev.flinksched.examples.StatefulCounter",
                     "programArgsList": ["--rate", "20"], "parallelism": 1,
                     "flinkConfiguration": {"execution.checkpointing.interval": "500ms"}}

    def get(self, path: str) -> Any:
        answer = httpx.get(self.url + path, timeout=10)
        return answer.json()

    def wait_for_state(self, state: str) -> None:
        wait_until(lambda: self.client.job_state(self.job_id) == state, 60,
                   f"{state} on {self.url}")

    def has_checkpoint(self) -> bool:
        return bool(self.get(f"/jobs/{self.job_id}/checkpoints")["latest"]["completed"])

    def savepoint(self, trigger: str) -> tuple[str, str]:
        def finished() -> tuple[str, str] | None:
            result = self.client.savepoint_result(self.job_id, trigger)
            return result if result[0] != "IN_PROGRESS" else None

        return wait_until(finished, 60, f"savepoint on {self.url}")


@on_each_flink
def test_the_simulator_answers_as_flink_does(flink: FlinkUnderTest, simulator: str) -> None:
    cluster = flink.cluster
    real, sim = Side(cluster.rest_url, cluster, "real"), Side(simulator, cluster, "sim")
    assert real.get("/config")["flink-version"] == flink.version
    assert sim.get("/config")["flink-version"] == flink.version
    try:
        for side in (real, sim):
            assert side.client.run_jar(side.jar_id, side.body) == side.job_id
            with pytest.raises(JobAlreadySubmitted):
                side.client.run_jar(side.jar_id, side.body)
            with pytest.raises(JarMissing):
                side.client.run_jar("00000000-0000-0000-0000-000000000000_gone.jar",
                                    {**side.body, "jobId": flink_job_id("contract-x", 9)})
            assert side.client.job_state(flink_job_id("contract-nobody", 1)) is None
            side.client.cancel(flink_job_id("contract-nobody", 1))  # no error for a lost job
            side.wait_for_state("RUNNING")
            wait_until(side.has_checkpoint, 60, f"a checkpoint on {side.url}")
            assert side.client.restart_count(side.job_id) in (None, 0)  # Flink: after ~10 s
            assert CHECKPOINT_DIR.read(side.client.jobmanager_config())
            assert side.job_id in [j["id"] for j in side.client.jobs()]

        for path in ("/jobs", "/jobs/{id}", "/jobs/{id}/status", "/jobs/{id}/checkpoints",
                     "/jobs/{id}/exceptions?maxExceptions=1", "/jobs/{id}/metrics?get=numRestarts",
                     "/jars", "/jobmanager/config", "/jobs/overview", "/config",
                     f"/jobs/{flink_job_id('contract-nobody', 1)}/status"):
            assert_within(shape(sim.get(path.format(id=sim.job_id))),
                          shape(real.get(path.format(id=real.job_id))), path)
        # The checkpoint directory under the name this version's clusters are configured with.
        named = [{key for key in side.client.jobmanager_config() if key in CHECKPOINT_DIR.names}
                 for side in (real, sim)]
        assert named[0] == named[1], f"checkpoint directory key: Flink {named[0]}, sim {named[1]}"

        outcomes = []
        for side in (real, sim):
            trigger = side.client.trigger_savepoint(side.job_id)
            state, location = side.savepoint(trigger)
            assert state == "COMPLETED" and location.startswith("file:"), (side.url, location)
            status = side.get(f"/jobs/{side.job_id}/savepoints/{trigger}")
            outcomes.append(shape(status))
            disposal = side.client.dispose_savepoint(location)
            assert disposal
            stop = side.client.stop_with_savepoint(side.job_id)
            assert side.savepoint(stop)[0] == "COMPLETED"
            side.wait_for_state("FINISHED")
            side.client.cancel(side.job_id)  # an ended job: no error
        assert_within(outcomes[1], outcomes[0], "savepoint status")
    finally:
        real.client.cancel(real.job_id)
        real.client.close()
        sim.client.close()


def test_the_simulator_fails_and_loses_jobs_at_chosen_times(cluster: Cluster,
                                                           simulator: str) -> None:
    client = FlinkClient(simulator)
    try:
        jar = client.upload_jar(cluster.example_jar, "flinksched-example.jar")
        failing, lost = flink_job_id("timed-fail", 1), flink_job_id("timed-lose", 1)
        for job_id in (failing, lost):
            client.run_jar(jar, {"jobId": job_id, "entryClass": "x", "parallelism": 1})
        scheduled = time.monotonic()
        httpx.post(f"{simulator}/_sim/jobs/{failing}/fail", params={"afterMs": 1000})
        httpx.post(f"{simulator}/_sim/jobs/{lost}/lose", params={"afterMs": 1000})
        assert client.job_state(failing) == "RUNNING" and client.job_state(lost) == "RUNNING"
        wait_until(lambda: client.job_state(failing) == "FAILED", 10, "the timed failure")
        assert time.monotonic() - scheduled >= 1.0
        # Scheduled a moment after the failure, so due a moment later.
        wait_until(lambda: client.job_state(lost) is None, 10, "the timed loss")
        assert "simulated failure" in client.root_exception(failing)
    finally:
        client.close()
