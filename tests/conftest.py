"""Session fixtures: one real ZooKeeper and one real Flink session cluster for the whole run,
and a second cluster, of the other supported major Flink version, started when a test
parametrized with `on_each_flink` first needs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.store import Store
from scheduler.devstack.services import free_port
from scheduler.devstack.stack import DevStack, StackConfig
from tests.stack import (
    PRIMARY_VERSION,
    PUSH_ROOT,
    PUSH_SETTINGS,
    REPO,
    SECOND_VERSION,
    TEST_JAVA_OPTIONS,
    Cluster,
    ControlPlane,
    FlinkUnderTest,
)
from tests.tcpproxy import TcpProxy
from tests.zkserver import store_on


@pytest.fixture(scope="session")
def push_proxy() -> Iterator[TcpProxy]:
    """The session cluster's status listener reaches ZooKeeper through this proxy, so a test
    can silence the listener while flinksched's own sessions carry on."""
    proxy = TcpProxy(free_port())  # ZooKeeper starts on that port later
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(scope="session")
def devstack(tmp_path_factory: pytest.TempPathFactory,
             push_proxy: TcpProxy) -> Iterator[DevStack]:
    state = tmp_path_factory.mktemp("stack")
    config = StackConfig(state_dir=state, zk_port=push_proxy.target[1],
                         rest_port=free_port(), rpc_port=free_port(), workers=0,
                         push_root=PUSH_ROOT, push_zk=f"127.0.0.1:{push_proxy.port}",
                         push_settings=PUSH_SETTINGS, java_options=TEST_JAVA_OPTIONS)
    stack = DevStack(config)
    try:
        stack.state_dir.mkdir(parents=True, exist_ok=True)
        stack.prepare()
        stack.start_zookeeper()
        stack.start_flink()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def cluster(devstack: DevStack, push_proxy: TcpProxy) -> Cluster:
    jar = devstack.config.build_dir / "flinksched-example.jar"
    return Cluster(zk_hosts=devstack.config.zk_hosts, rest_url=devstack.config.rest_url,
                   example_jar=jar, state_dir=devstack.state_dir, push_proxy=push_proxy,
                   flink_home=devstack.flink_home)


@pytest.fixture(scope="session")
def second_devstack(devstack: DevStack,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """A Flink cluster of SECOND_VERSION beside the session's, on the same ZooKeeper; its
    example job is compiled against its own Flink."""
    state = tmp_path_factory.mktemp(f"flink-{SECOND_VERSION}")
    config = StackConfig(state_dir=state, zk_port=devstack.config.zk_port,
                         rest_port=free_port(), rpc_port=free_port(), workers=0, push_root=None,
                         flink_version=SECOND_VERSION, java_options=TEST_JAVA_OPTIONS,
                         build_dir=REPO / "build" / f"flink-{SECOND_VERSION}")
    stack = DevStack(config)
    try:
        stack.state_dir.mkdir(parents=True, exist_ok=True)
        stack.prepare()
        stack.start_flink()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def flink(request: pytest.FixtureRequest) -> FlinkUnderTest:
    """The cluster a test runs on: the session's, or with `on_each_flink` each version's."""
    version = getattr(request, "param", PRIMARY_VERSION)
    if version == PRIMARY_VERSION:
        return FlinkUnderTest(version, request.getfixturevalue("devstack"),
                              request.getfixturevalue("cluster"))
    stack: DevStack = request.getfixturevalue("second_devstack")
    cluster = Cluster(zk_hosts=stack.config.zk_hosts, rest_url=stack.config.rest_url,
                      example_jar=stack.config.build_dir / "flinksched-example.jar",
                      state_dir=stack.state_dir, flink_home=stack.flink_home)
    return FlinkUnderTest(version, stack, cluster)


@pytest.fixture
def control(flink: FlinkUnderTest, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(flink.cluster, tmp_path)
    try:
        yield plane
    finally:
        plane.stop_all()
        flink.cluster.cancel_all()


@pytest.fixture
def store(control: ControlPlane) -> Iterator[Store]:
    with store_on(control.cluster.zk_hosts, control.root) as store:
        yield store
