"""Leadership safety on a real ZooKeeper: an ex-leader whose session expired cannot write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from common.errors import FencedError
from common.store.zookeeper import Store
from scheduler.master.process import Master
from tests.stack import Cluster
from tests.waiting import wait_until
from tests.zkfaults import expire_session

pytestmark = pytest.mark.e2e


@pytest.fixture
def masters(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Master, Master]]:
    root = f"/leadership-{tmp_path.name}"
    made = []
    for name in ("a", "b"):
        client = KazooClient(hosts=cluster.zk_hosts, timeout=6)
        client.start(timeout=10)
        store = Store(client, root)
        store.ensure_layout()
        made.append(Master(store, f"master-{name}", tmp_path, cycle_interval=0.2))
    try:
        yield made[0], made[1]
    finally:
        for master in made:
            master.stop()
            master.store.zk.stop()
            master.store.zk.close()


def test_expired_ex_leader_cannot_write_and_steps_down(masters: tuple[Master, Master]) -> None:
    a, b = masters
    a.start()
    wait_until(lambda: a.leading, 10, "master-a to lead")
    b.start()
    old_fence = a.fence
    assert old_fence is not None

    expire_session(a.store.zk)

    wait_until(lambda: b.leading, 10, "master-b to lead once master-a's session expired")
    with pytest.raises(FencedError):
        a.store.apply_assignments([("worker-x", "some-job")], [], old_fence)
    wait_until(lambda: not a.leading and a.standby_message.startswith("standby"), 10,
               "master-a to step down to standby")
    assert b.store.leader_id() == "master-b"
    assert b.store.assignments() == {}
