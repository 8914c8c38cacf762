"""Session fixtures: one real ZooKeeper and one real Flink session cluster for the whole run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.store import Store
from scheduler.devstack.services import free_port
from scheduler.devstack.stack import DevStack, StackConfig
from tests.stack import PUSH_ROOT, PUSH_SETTINGS, Cluster, ControlPlane
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
                         push_settings=PUSH_SETTINGS)
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
                   example_jar=jar, state_dir=devstack.state_dir, push_proxy=push_proxy)


@pytest.fixture
def control(cluster: Cluster, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(cluster, tmp_path)
    try:
        yield plane
    finally:
        plane.stop_all()
        cluster.cancel_all()


@pytest.fixture
def store(control: ControlPlane) -> Iterator[Store]:
    with store_on(control.cluster.zk_hosts, control.root) as store:
        yield store
