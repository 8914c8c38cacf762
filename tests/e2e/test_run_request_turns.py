"""Turns at a session cluster's run requests in the real ZooKeeper: shared turns go
together, a turn alone waits for them and they for it, and a turn that does not come in
time is an error naming the cluster (the worker then submits again a moment later)."""

from __future__ import annotations

import threading

import pytest

from common.errors import RunRequestBusy
from tests.stack import Cluster
from tests.waiting import wait_until
from tests.zkserver import store_on
from worker import runturns

pytestmark = pytest.mark.e2e

URL = "http://session.invalid:8081"


def test_a_turn_alone_waits_for_shared_turns_and_a_late_one_names_the_cluster(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runturns, "ALONE_WAIT", 0.5)
    monkeypatch.setattr(runturns, "SHARED_WAIT", 0.5)
    with store_on(cluster.zk_hosts, "/turns-a") as one, store_on(cluster.zk_hosts, "/turns-b") \
            as other:  # two roots, one cluster: the turns are the cluster's
        mine, theirs = runturns.zookeeper_turns(one, "w1"), runturns.zookeeper_turns(other, "w2")
        busy = pytest.raises(RunRequestBusy, match=r"session\.invalid:8081.*turn alone")
        # Shared turns at once; one alone waits for both (its own root's among them).
        with mine(URL, False), theirs(URL, False), busy, theirs(URL, True):
            pass
        released, held = threading.Event(), threading.Event()

        def alone() -> None:
            with theirs(URL, True):
                held.set()
                released.wait(10)

        worker = threading.Thread(target=alone)
        worker.start()
        try:
            wait_until(held.is_set, 10, "the turn alone, once the shared ones ended")
            with pytest.raises(RunRequestBusy, match="beside other jobs"), mine(URL, False):
                pass
            with mine("http://another.invalid:8081", True):  # another cluster: no wait
                pass
        finally:
            released.set()
            worker.join(10)
        with mine(URL, False):  # given back
            pass
