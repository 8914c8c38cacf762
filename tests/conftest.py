"""One stack for the whole run, shared by every process of it (pytest-xdist workers): one
real ZooKeeper, one Flink session cluster whose status listener reaches ZooKeeper through a
proxy a test can cut, and a second cluster, of the other supported major Flink version,
started when a test parametrized with `on_each_flink` first needs it. Each test runs its
masters and workers under a ZooKeeper root of its own.

A test that takes its cluster down (marker `takes_cluster_down`) has it to itself; every
other test that uses a cluster shares it (`tests/clusterlock.py`). A test whose jobs run
Python functions (marker `python_functions`) runs on a session cluster of its version kept
for such tests, one at a time: Flink's Python runner now and then ends the TaskManager of
every job on it when a Python job is cancelled (an exception in the task's clean-up, from a
reference count in Beam's bundle factory going negative), which must not fail the tests of
jar jobs beside it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.processes import free_port
from common.store.zookeeper import Store
from scheduler.devstack.seaweedfs import S3Server
from scheduler.devstack.services import Service, port_open, release_children, start, wait_for
from scheduler.devstack.stack import DevStack, StackConfig
from tests.clusterlock import ClusterLock
from tests.objectstore import Bucket
from tests.sharedservers import (
    Record,
    SharedServers,
    service_fields,
    stack_config,
    stack_fields,
)
from tests.stack import (
    BUILD_DIRS,
    PRIMARY_VERSION,
    PUSH_ROOT,
    PUSH_SETTINGS,
    SECOND_VERSION,
    TEST_JAVA_OPTIONS,
    Cluster,
    ControlPlane,
    FlinkUnderTest,
)
from tests.tcpproxy import RemoteProxy
from tests.zkserver import store_on

RUN_DIRECTORY = "FLINKSCHED_TEST_RUN"  # set by the run's main process for all of them
# A class of tests on another cluster says so in its FLINK_VERSION.
USES_A_CLUSTER = {"flink", "cluster", "devstack", "control", "life_plane"}
PYTHON_FUNCTIONS = "python_functions"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "takes_cluster_down: the test stops its cluster's "
                            "JobManager; it runs while no other test uses that cluster")
    config.addinivalue_line("markers", f"{PYTHON_FUNCTIONS}: the test's jobs run Python "
                            "functions on a session cluster; it runs alone on a cluster of its "
                            "version kept for such tests")
    if os.environ.get("PYTEST_XDIST_WORKER") is None and RUN_DIRECTORY not in os.environ:
        os.environ[RUN_DIRECTORY] = tempfile.mkdtemp(prefix="flinksched-test-run-")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The main process, once every test of the run has ended: stop the shared servers."""
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        release_children()  # servers this worker started for the run: the main one stops them
        return
    run = Path(os.environ[RUN_DIRECTORY])
    SharedServers(run).stop_all()
    if session.testsfailed:
        keep_cluster_logs(run, run.with_name(f"{run.name}-kept"))
    shutil.rmtree(run, ignore_errors=True)


FATAL_LINE = re.compile(r"ERROR|FATAL|Fatal|OutOfMemory|shutting down|did not exit")


def keep_cluster_logs(run: Path, kept: Path) -> None:
    """A run with failures keeps its shared clusters' logs beside its directory, and names
    their errors here: a cluster that went wrong under one test fails others."""
    for logs in sorted(run.glob("shared/*/stack/logs")):
        target = kept / "cluster-logs" / logs.parent.parent.name
        shutil.copytree(logs, target, dirs_exist_ok=True)
        found = [f"{log.name}: {line[:300]}" for log in sorted(target.glob("flink--*.log"))
                 for line in log.read_text(errors="replace").splitlines()
                 if FATAL_LINE.search(line)]
        print(f"\n{logs.parent.parent.name} cluster's logs kept in {target}; "
              f"{len(found)} error lines, the first:", *found[:15], sep="\n  ")


def run_directory() -> Path:
    return Path(os.environ[RUN_DIRECTORY])


@pytest.fixture(scope="session")
def shared() -> SharedServers:
    return SharedServers(run_directory())


@pytest.fixture(autouse=True)
def cluster_share(request: pytest.FixtureRequest) -> Iterator[None]:
    """The cluster a test uses, shared with the other tests (or, when the test takes it down,
    to itself) for as long as the test runs."""
    if not USES_A_CLUSTER & set(request.fixturenames):
        yield
        return
    callspec = getattr(request.node, "callspec", None)
    version = callspec.params.get("flink", PRIMARY_VERSION) if callspec else getattr(
        request.cls, "FLINK_VERSION", PRIMARY_VERSION)
    python = request.node.get_closest_marker(PYTHON_FUNCTIONS) is not None
    lock = ClusterLock(run_directory() / "locks", f"{'python-' if python else ''}flink-{version}")
    alone = python or request.node.get_closest_marker("takes_cluster_down") is not None
    with lock.exclusive() if alone else lock.shared():
        yield


def _start_primary(directory: Path, record: Record) -> dict[str, Any]:
    """ZooKeeper, the proxy between the session cluster's listener and it, the S3 server
(every cluster of the run can reach it; the session cluster keeps its own state on local
disk, and jobs name a directory on S3 to keep theirs there), and the cluster."""
    directory.mkdir(parents=True)
    zk_port, proxy_port, control_port = free_port(), free_port(), free_port()
    record({"services": [service_fields(Service("push-proxy", [], {}, directory))]})
    proxy = Service("push-proxy", [sys.executable, "-m", "tests.tcpproxy", "--listen",
                                   str(proxy_port), "--target", str(zk_port), "--control",
                                   str(control_port)], {}, directory)
    start(proxy)
    assert wait_for(lambda: port_open(control_port), 30), proxy.log_file.read_text()
    config = StackConfig(state_dir=directory / "stack", zk_port=zk_port, rest_port=free_port(),
                         rpc_port=free_port(), workers=0, push_root=PUSH_ROOT,
                         push_zk=f"127.0.0.1:{proxy_port}", push_settings=PUSH_SETTINGS,
                         java_options=TEST_JAVA_OPTIONS, s3_port=free_port())
    info = {"services": [service_fields(proxy)], "stack": stack_fields(config),
            "push_proxy": [proxy_port, control_port]}
    record(info)
    stack = DevStack(config)
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    stack.prepare()
    stack.start_zookeeper()
    stack.start_s3()
    stack.start_flink()
    return info


@pytest.fixture(scope="session")
def primary(shared: SharedServers) -> dict[str, Any]:
    return shared.provide("primary", _start_primary)


@pytest.fixture(scope="session")
def devstack(primary: dict[str, Any]) -> DevStack:
    return DevStack(stack_config(primary["stack"]))


@pytest.fixture(scope="session")
def s3(devstack: DevStack) -> S3Server:
    """The run's S3 server. This process reaches it as flinksched's processes do, through
    the environment (the CLI a test runs in-process checks restore points there)."""
    server = devstack.config.s3()
    assert server is not None
    os.environ.update(server.client_env())
    return server


@pytest.fixture(scope="session")
def bucket(s3: S3Server) -> Bucket:
    return Bucket(s3)


@pytest.fixture(scope="session")
def push_proxy(primary: dict[str, Any]) -> RemoteProxy:
    """The session cluster's status listener reaches ZooKeeper through this proxy, so a test
    can silence the listener while flinksched's own sessions carry on."""
    port, control = primary["push_proxy"]
    return RemoteProxy(port, control)


@pytest.fixture(scope="session")
def cluster(devstack: DevStack, push_proxy: RemoteProxy) -> Cluster:
    jar = devstack.config.build_dir / "flinksched-example.jar"
    return Cluster(zk_hosts=devstack.config.zk_hosts, rest_url=devstack.config.rest_url,
                   example_jar=jar, state_dir=devstack.state_dir, push_proxy=push_proxy,
                   flink_home=devstack.flink_home, s3=devstack.config.s3())


def session_stack(devstack: DevStack, shared: SharedServers, name: str, version: str,
                  build_dir: Path) -> DevStack:
    """A session cluster of `version` beside the run's, on its ZooKeeper and S3 server,
    started by the first process of the run that needs it; its jobs are watched by polling."""

    def started(directory: Path, record: Record) -> dict[str, Any]:
        config = StackConfig(state_dir=directory / "stack", zk_port=devstack.config.zk_port,
                             rest_port=free_port(), rpc_port=free_port(), workers=0,
                             push_root=None, flink_version=version,
                             java_options=TEST_JAVA_OPTIONS, s3_port=devstack.config.s3_port,
                             build_dir=build_dir)
        record({"stack": stack_fields(config)})
        stack = DevStack(config)
        stack.state_dir.mkdir(parents=True, exist_ok=True)
        stack.prepare()
        stack.start_flink()
        return {"stack": stack_fields(config)}

    return DevStack(stack_config(shared.provide(name, started)["stack"]))


@pytest.fixture(scope="session")
def second_devstack(devstack: DevStack, shared: SharedServers) -> DevStack:
    """A Flink cluster of SECOND_VERSION; its example job is compiled against its own Flink."""
    return session_stack(devstack, shared, f"flink-{SECOND_VERSION}", SECOND_VERSION,
                         BUILD_DIRS[SECOND_VERSION])


@pytest.fixture
def flink(request: pytest.FixtureRequest) -> FlinkUnderTest:
    """The cluster a test runs on: the session's, or with `on_each_flink` each version's."""
    return flink_of(request, getattr(request, "param", PRIMARY_VERSION))


@pytest.fixture(scope="session")
def flink_for(request: pytest.FixtureRequest) -> Callable[[str], FlinkUnderTest]:
    """The cluster of a version, for fixtures wider than one test (a class's job life)."""
    return lambda version: flink_of(request, version)


def flink_of(request: pytest.FixtureRequest, version: str) -> FlinkUnderTest:
    if request.node.get_closest_marker(PYTHON_FUNCTIONS) is not None:
        stack = session_stack(request.getfixturevalue("devstack"),
                              request.getfixturevalue("shared"), f"python-flink-{version}",
                              version, BUILD_DIRS[version])
    elif version == PRIMARY_VERSION:
        return FlinkUnderTest(version, request.getfixturevalue("devstack"),
                              request.getfixturevalue("cluster"))
    else:
        stack = request.getfixturevalue("second_devstack")
    cluster = Cluster(zk_hosts=stack.config.zk_hosts, rest_url=stack.config.rest_url,
                      example_jar=stack.config.build_dir / "flinksched-example.jar",
                      state_dir=stack.state_dir, flink_home=stack.flink_home,
                      s3=stack.config.s3())
    return FlinkUnderTest(version, stack, cluster)


@pytest.fixture
def control(flink: FlinkUnderTest, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(flink.cluster, tmp_path)
    try:
        yield plane
    finally:
        plane.stop_all()
        plane.cancel_jobs()


@pytest.fixture
def store(control: ControlPlane) -> Iterator[Store]:
    with store_on(control.cluster.zk_hosts, control.root) as store:
        yield store


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Each test is handed to whichever process is free, but the tests of one class go to
    one process, in order: they share state (one job's life, the one root the session
    cluster's listener pushes to)."""
    from xdist.scheduler import LoadScopeScheduling

    class ClassesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            parts = nodeid.split("::")
            return "::".join(parts[:2]) if len(parts) > 2 else nodeid

    return ClassesTogether(config, log)


LOG_TAIL_LINES = 40


def _control_plane(funcargs: dict[str, Any]) -> ControlPlane | None:
    """The control plane a test ran: a fixture's value, or part of one."""
    for value in funcargs.values():
        for candidate in value if isinstance(value, tuple) else (value,):
            if isinstance(candidate, ControlPlane):
                return candidate
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                               call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failed test that ran masters and workers shows each one's last log lines and its
    jobs' statuses beside the assertion: the run's directories are gone once it ends. One
    that had its cluster to itself (`takes_cluster_down`) shows the cluster's logs too."""
    outcome: Any = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    plane = _control_plane(funcargs)
    if report.when != "call" or not report.failed or plane is None:
        return
    logs = sorted(plane.workdir.glob("*.log"))
    flink = funcargs.get("flink")
    if isinstance(flink, FlinkUnderTest) and item.get_closest_marker("takes_cluster_down"):
        logs += sorted((flink.devstack.state_dir / "logs").glob("flink--*.log"))
    for log in logs:
        if not log.is_file():
            continue
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        report.sections.append((f"{log.stem}'s last log lines", "\n".join(lines)))
    if plane.jobs:
        try:
            with store_on(plane.cluster.zk_hosts, plane.root) as store:
                text = "\n".join(f"{name}: {store.status(name)[0]}" for name in sorted(plane.jobs))
        except Exception as exc:  # diagnostics must not hide the failure itself
            text = f"could not read them: {exc!r}"
        report.sections.append(("job statuses", text))
