"""The chaos run: faults at random times in random order on the real stack, with the
invariants checked throughout. `make test` runs one fault of each kind; `make chaos` runs
FLINKSCHED_CHAOS_FAULTS of them (200 by default) and prints the table."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.processes import free_port
from scheduler.devstack.stack import DevStack, StackConfig
from tests.chaos.run import FAULTS, ChaosStack, Report, run
from tests.stack import TEST_JAVA_OPTIONS, Cluster
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.chaos

REPORT = Path(__file__).resolve().parents[2] / "build" / "chaos-report.md"


@pytest.fixture
def chaos_flink(tmp_path: Path) -> Iterator[tuple[DevStack, Cluster, TcpProxy]]:
    """A session cluster of the run's own, with an S3 server of its own that the cluster
    reaches through a proxy: it kills and restarts the JobManager and the S3 server, slows
    their traffic and cancels jobs behind the workers' backs, which no other test could
    share."""
    s3_port = free_port()
    flink_to_s3 = TcpProxy(s3_port)
    config = StackConfig(state_dir=tmp_path / "flink", zk_port=free_port(),
                         rest_port=free_port(), rpc_port=free_port(), workers=0, push_root=None,
                         java_options=TEST_JAVA_OPTIONS, s3_port=s3_port,
                         flink_s3_port=flink_to_s3.port)
    stack = DevStack(config)
    stack.state_dir.mkdir(parents=True)
    try:
        jar = stack.prepare()
        stack.start_s3()
        stack.start_flink()
        yield stack, Cluster(zk_hosts="", rest_url=config.rest_url, example_jar=jar,
                             state_dir=stack.state_dir, flink_home=stack.flink_home,
                             s3=config.s3()), flink_to_s3
    finally:
        stack.down()
        flink_to_s3.close()


@pytest.fixture
def chaos_stack(chaos_flink: tuple[DevStack, Cluster, TcpProxy],
                tmp_path: Path) -> Iterator[ChaosStack]:
    stack = ChaosStack(*chaos_flink, tmp_path)
    try:
        yield stack
    finally:
        stack.close()


@pytest.mark.timeout(0)  # bounded by the run's own deadlines (recovery bound per fault)
def test_faults_never_duplicate_regress_or_lose_a_job(chaos_stack: ChaosStack) -> None:
    faults = int(os.environ.get("FLINKSCHED_CHAOS_FAULTS", len(FAULTS)))
    seed = int(os.environ.get("FLINKSCHED_CHAOS_SEED", time.time_ns() % 100_000))
    print(f"\nchaos run: {faults} faults, seed {seed}")
    REPORT.parent.mkdir(exist_ok=True)

    def write(report: Report) -> None:  # after every fault: an interrupted run keeps its table
        done = len(report.recoveries)
        REPORT.write_text(f"# Chaos run: {done} of {faults} faults, seed {seed}\n\n"
                          f"{report.table()}\n")

    report = run(chaos_stack, faults, seed, after_fault=write)
    print(report.table())

    found = report.findings
    assert not found.duplicates, f"two RUNNING attempts of one job: {sorted(found.duplicates)}"
    assert not found.regressions, "\n".join(found.regressions)
    assert not found.vanished, f"jobs gone from ZooKeeper: {sorted(found.vanished)}"
    assert not report.log_problems, "\n".join(report.log_problems[:20])
    unrecovered = [r for r in report.recoveries if r.seconds is None]
    assert not unrecovered, f"not RUNNING again within the bound: {unrecovered}"
    assert not chaos_stack.checker.unjudged_restores(), "restore points left unjudged"
    assert found.restores_checked > 0, "no restart's restore point was ever judged"
    assert {r.kind for r in report.recoveries} == set(FAULTS) or faults < len(FAULTS)
