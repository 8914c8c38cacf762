"""The leader's heap: full garbage collections wait while it loads its jobs, then what it
loaded is kept out of them (a full pass holds the interpreter lock, scrapes included)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from common.store.zookeeper import Store
from scheduler.master.process import LOADING_FULL_GC_AFTER, Master


def store() -> Store:
    return Store(KazooClient(hosts="127.0.0.1:1"), "/unit")  # never started: nothing is read


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Master]:
    original = gc.get_threshold()
    try:
        yield Master(store(), "master-a", tmp_path, manage_heap=True)
    finally:
        gc.set_threshold(*original)
        gc.unfreeze()


def test_a_loaded_leader_keeps_its_state_out_of_full_collections(master: Master) -> None:
    original = gc.get_threshold()
    master._defer_full_collections()  # became leader
    assert gc.get_threshold() == (*original[:2], LOADING_FULL_GC_AFTER)
    master._settle_heap(jobs=3)  # its first export pass with every record
    assert gc.get_freeze_count() > 0 and gc.get_threshold() == original


def test_a_leader_that_steps_down_while_loading_restores_the_collector(master: Master) -> None:
    original = gc.get_threshold()
    master._defer_full_collections()
    master._set_leading(False)
    assert gc.get_threshold() == original and gc.get_freeze_count() == 0


def test_only_the_master_process_manages_its_heap(tmp_path: Path) -> None:
    assert Master(store(), "in-a-test", tmp_path).manage_heap is False
