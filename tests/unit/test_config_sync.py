"""The leader's config sync against the in-memory store: no ZooKeeper, milliseconds a case."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from common.errors import FencedError
from common.store.memory import MemoryStore
from common.store.records import Fence, JobRecord, JobStatus, Phase
from scheduler.master import sync as sync_module
from scheduler.master.sync import ConfigSync
from tests.unit.configtexts import CLUSTER
from tests.unit.test_plan import job


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    return tmp_path


def leader(store: MemoryStore) -> Fence:
    return store.join_election("master-a")


def test_a_first_sync_writes_every_job_and_publishes_the_config_state(configs: Path) -> None:
    (configs / "a.yaml").write_text(job("a"))
    (configs / "b.yaml").write_text(job("b"))
    store, woken = MemoryStore(), []
    sync = ConfigSync(store, "master-a", configs, changed=lambda: woken.append(True))
    assert "2 added" in sync.run(leader(store))
    assert sorted(store.jobs()) == ["a", "b"] and store.jobs()["a"].generation == 1
    assert store.events("a")[0]["message"].startswith("generation 1 from")
    assert store.config_state()["errorCount"] == 0 and woken


def test_a_changed_spec_is_a_new_generation_and_an_unchanged_one_writes_nothing(
        configs: Path) -> None:
    (configs / "a.yaml").write_text(job("a"))
    (configs / "b.yaml").write_text(job("b"))
    store = MemoryStore()
    sync, fence = ConfigSync(store, "master-a", configs), leader(store)
    sync.run(fence)
    before = store.jobs()["b"]
    (configs / "a.yaml").write_text(job("a", parallelism=4))
    sync.run(fence)
    assert store.jobs()["a"].generation == 2 and store.jobs()["b"] is before
    assert "job.parallelism: 1 -> 4" in store.events("a")[-1]["message"]


def test_a_broken_file_keeps_the_last_valid_spec_and_names_the_problem(configs: Path) -> None:
    (configs / "a.yaml").write_text(job("a"))
    (configs / "b.yaml").write_text(job("b"))
    store = MemoryStore()
    sync, fence = ConfigSync(store, "master-a", configs), leader(store)
    sync.run(fence)
    (configs / "a.yaml").write_text(job("a", "  bogusField: 1\n"))
    (configs / "b.yaml").write_text(job("b", parallelism=2))
    sync.run(fence)
    assert store.jobs()["a"].generation == 1 and store.jobs()["b"].generation == 2
    assert "a.yaml" in store.config_state()["jobErrors"]["a"]


def test_removing_most_jobs_at_once_is_withheld_until_allowed(configs: Path) -> None:
    for name in "abc":
        (configs / f"{name}.yaml").write_text(job(name))
    store = MemoryStore()
    sync, fence = ConfigSync(store, "master-a", configs), leader(store)
    sync.run(fence)
    for name in "ab":
        (configs / f"{name}.yaml").unlink()
    assert "REMOVAL WITHHELD" in sync.run(fence)
    assert not any(r.removed for r in store.jobs().values())
    store.allow_removal("ops@host")
    sync.run(fence)
    assert sorted(n for n, r in store.jobs().items() if r.removed) == ["a", "b"]
    assert store.removal_allowed() is None  # consumed


def test_a_removed_job_is_deleted_after_the_grace_once_stopped(configs: Path) -> None:
    (configs / "a.yaml").write_text(job("a"))
    (configs / "b.yaml").write_text(job("b"))
    store = MemoryStore()
    sync, fence = ConfigSync(store, "master-a", configs, removal_grace=0.0), leader(store)
    sync.run(fence)
    (configs / "a.yaml").unlink()
    sync.run(fence)  # marked removed; its worker is still stopping it
    assert store.jobs()["a"].removed
    owner = store.claim_ownership("a", "worker-1", 1)
    store.write_status("a", replace(JobStatus(), phase=Phase.RUNNING, attempt=1), 0, owner)
    sync.run(fence)
    assert "a" in store.jobs()  # not stopped yet: kept
    store.write_status("a", JobStatus(phase=Phase.REMOVED, attempt=1), 1, owner)
    assert "deleted a" in sync.run(fence)
    assert sorted(store.jobs()) == ["b"]


def test_a_master_that_lost_its_session_writes_nothing(configs: Path) -> None:
    (configs / "a.yaml").write_text(job("a"))
    store = MemoryStore()
    fence = leader(store)
    store.expire_session("master-a")
    with pytest.raises(FencedError):
        ConfigSync(store, "master-a", configs).run(fence)
    assert store.jobs() == {}


class CopyingStore(MemoryStore):
    """Reads give new objects, as decoding ZooKeeper's bytes does."""

    def jobs(self) -> dict[str, JobRecord]:
        return {name: replace(record) for name, record in super().jobs().items()}


def test_records_read_again_unchanged_stay_the_objects_already_held(
        configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (configs / "a.yaml").write_text(job("a"))
    (configs / "b.yaml").write_text(job("b"))
    store = CopyingStore()
    sync, fence = ConfigSync(store, "master-a", configs), leader(store)
    sync.run(fence)
    monkeypatch.setattr(sync_module, "RECORDS_REREAD", 0.0)  # every sync reads them again
    sync.run(fence)
    held = dict(sync.records or {})
    validated = held["a"].model  # validated once, kept with the object
    changed = replace(store.jobs()["b"], generation=7)  # changed in ZooKeeper meanwhile
    store.put_jobs([(changed, False, "")], fence)
    sync.run(fence)
    records = sync.records or {}
    assert records["a"] is held["a"] and records["a"].model is validated
    assert records["b"] is not held["b"] and records["b"].generation == 7
