"""Which earlier attempts' checkpoints are deleted (pure), and the keeping of a job's state
on local disk through the same storage interface object storage uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import StorageUnavailable
from common.flink.jobids import flink_job_id
from common.objstore.storage import Storage
from common.store.records import Checkpoint, JobStatus, Phase
from tests.unit.decisions_util import NAME, record
from worker.decide.observation import Clock
from worker.decide.restore_rules import own_checkpoint
from worker.decide.retention import AttemptState, Prune, attempt_states, claim_mode, prune
from worker.statekeeping import Inline, StateKeeper, keep, work_of

BASE = "s3://flink/checkpoints"


def attempt(number: int, checkpoints: int = 1) -> AttemptState:
    return AttemptState(number, f"{BASE}/{flink_job_id(NAME, number)}", 3, 300, checkpoints)


def deleted(plan: Prune) -> list[int]:
    return [s.attempt for s in plan.delete]


def test_once_the_attempt_has_its_own_checkpoint_older_attempts_go_but_one() -> None:
    plan = prune([attempt(n) for n in range(1, 6)], current=5, own_checkpoint=True, retain=1,
                 protected=())
    assert deleted(plan) == [1, 2, 3]
    assert [s.attempt for s in plan.kept] == [4, 5] and not plan.held


def test_nothing_goes_before_the_attempt_has_a_checkpoint_of_its_own() -> None:
    plan = prune([attempt(n) for n in range(1, 4)], 3, own_checkpoint=False, retain=0,
                 protected=())
    assert deleted(plan) == [] and "no checkpoint of its own" in plan.held and not plan.off


def test_the_fallback_is_the_newest_earlier_attempt_that_completed_a_checkpoint() -> None:
    """Attempts that failed before their first checkpoint are no fallback: they go, and the
    kept one is the newest with a complete checkpoint."""
    states = [attempt(1), attempt(2), attempt(3, checkpoints=0), attempt(4, checkpoints=0),
              attempt(5)]
    plan = prune(states, 5, True, retain=1, protected=())
    assert deleted(plan) == [1, 3, 4]


def test_a_directory_holding_a_point_the_status_names_is_kept() -> None:
    savepoint_in_it = f"{BASE}/{flink_job_id(NAME, 1)}/chk-7"
    plan = prune([attempt(n) for n in range(1, 5)], 4, True, retain=0,
                 protected=(savepoint_in_it,))
    assert deleted(plan) == [2, 3]


def test_attempts_numbered_above_the_current_one_are_left_alone() -> None:
    """State of an earlier life of a job of the same name: not this life's to delete."""
    plan = prune([attempt(1), attempt(2), attempt(9)], 2, True, retain=0, protected=())
    assert deleted(plan) == [1]


@pytest.mark.parametrize("configured", ["CLAIM", "claim", "LEGACY"])
def test_claim_and_legacy_restore_modes_delete_nothing(configured: str) -> None:
    mode = claim_mode(configured)
    plan = prune([attempt(n) for n in range(1, 5)], 4, True, retain=0, protected=(), mode=mode)
    assert deleted(plan) == [] and f"restore mode {mode}" in plan.held and plan.off


def test_no_claim_is_flinks_default() -> None:
    assert claim_mode(None) == claim_mode("no-claim") == claim_mode("NO_CLAIM") == "NO_CLAIM"


def test_a_listing_is_grouped_by_attempt_counting_complete_checkpoints_only() -> None:
    one, two = flink_job_id(NAME, 1), flink_job_id(NAME, 2)
    other = flink_job_id("another-job", 1)
    listing = [(f"{BASE}/{one}/chk-9/_metadata", 10), (f"{BASE}/{one}/chk-9/state-1", 90),
               (f"{BASE}/{one}/shared/sst-1", 400), (f"{BASE}/{two}/chk-10/state-1", 5),
               (f"{BASE}/{other}/chk-1/_metadata", 1)]
    states = attempt_states(NAME, BASE + "/", listing)
    assert states == [AttemptState(1, f"{BASE}/{one}", 3, 500, 1),
                      AttemptState(2, f"{BASE}/{two}", 1, 5, 0)]


def test_own_checkpoint_is_one_under_the_current_attempts_job_id() -> None:
    current = JobStatus(Phase.RUNNING, flink_job_id(NAME, 3), 3,
                        last_checkpoint=Checkpoint(f"{BASE}/{flink_job_id(NAME, 2)}/chk-4", 4, 1))
    assert not own_checkpoint(current)
    mine = current.with_changes(last_checkpoint=Checkpoint(
        f"{BASE}/{flink_job_id(NAME, 3)}/chk-5", 5, 2))
    assert own_checkpoint(mine)


# -- on local disk, through the storage interface --------------------------------------------
class LocalTarget:
    """The part of a deployment target keeping state needs: its configuration and storage."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.storage = Storage()

    def config(self) -> dict[str, str]:
        return {"execution.checkpointing.dir": f"file://{self.directory}"}


def write_attempt(root: Path, number: int, checkpoint: int) -> Path:
    chk = root / flink_job_id(NAME, number) / f"chk-{checkpoint}"
    chk.mkdir(parents=True)
    (chk / "_metadata").write_bytes(b"m" * 100)
    (root / flink_job_id(NAME, number) / "shared").mkdir()
    (root / flink_job_id(NAME, number) / "shared" / "sst").write_bytes(b"s" * 900)
    return chk


def test_keeping_state_on_local_disk_deletes_superseded_attempts_and_measures_the_rest(
        tmp_path: Path) -> None:
    for number in range(1, 5):
        write_attempt(tmp_path, number, number * 10)
    savepoint = tmp_path.parent / f"{tmp_path.name}-sp" / "savepoint-1"
    savepoint.mkdir(parents=True)
    (savepoint / "_metadata").write_bytes(b"x" * 50)
    newest = f"file:{tmp_path}/{flink_job_id(NAME, 4)}/chk-40"
    status = JobStatus(Phase.RUNNING, flink_job_id(NAME, 4), 4,
                       last_checkpoint=Checkpoint(newest, 40, 1),
                       savepoints=(Checkpoint(f"file:{savepoint}", 1, 1, "savepoint"),))
    kept = keep(work_of(record(), status), LocalTarget(tmp_path), clock=lambda: 42.0)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [flink_job_id(NAME, 3), flink_job_id(NAME, 4)]
    assert kept.stored is not None
    assert (kept.stored.objects, kept.stored.bytes) == (5, 2 * 1000 + 50)
    assert (kept.stored.attempts, kept.stored.savepoints, kept.stored.at) == (2, 1, 42.0)
    assert len(kept.events) == 1 and "attempts 1, 2 (4 objects, 2.0 KiB)" in kept.events[0]


def test_a_worker_that_does_not_see_the_directory_measures_and_deletes_nothing(
        tmp_path: Path) -> None:
    status = JobStatus(Phase.RUNNING, flink_job_id(NAME, 2), 2)
    kept = keep(work_of(record(), status), LocalTarget(tmp_path / "not-mounted"))
    assert kept.stored is None and not kept.events


def test_the_keeper_works_once_per_attempt_and_checkpoint_then_every_ten_minutes(
        tmp_path: Path) -> None:
    write_attempt(tmp_path, 1, 1)
    now = [1000.0]
    keeper = StateKeeper(NAME, clock=lambda: Clock(now[0], now[0]), runner=Inline())
    target = LocalTarget(tmp_path)
    status = JobStatus(Phase.RUNNING, flink_job_id(NAME, 1), 1)
    assert keeper.step(record(), target, status).stored is None  # started
    assert keeper.step(record(), target, status).stored is not None  # collected
    assert keeper.step(record(), target, status).stored is None  # not due
    now[0] += 601
    keeper.step(record(), target, status)
    assert keeper.step(record(), target, status).stored is not None


def _walked_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError) -> list[str]:
    """The checkpoints a local listing names when entering chk-4 raises `error`."""
    import os

    attempt = tmp_path / flink_job_id(NAME, 3)
    for number in (4, 5):
        (attempt / f"chk-{number}").mkdir(parents=True)
        (attempt / f"chk-{number}" / "_metadata").write_bytes(b"m")
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if str(path).endswith("chk-4"):
            raise type(error)(error.errno, error.strerror, str(path))
        return real_scandir(str(path))

    monkeypatch.setattr(os, "scandir", scandir)
    listed = Storage().list(f"file://{tmp_path}/{flink_job_id(NAME, 3)[:16]}")
    return [entry.uri.rsplit("/", 2)[-2] for entry in listed]


def test_a_local_listing_skips_a_checkpoint_flink_deletes_while_it_is_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flink drops subsumed checkpoints at any moment: one gone between listing its parent
    and entering it is left out, not an error that ends the job's cycle."""
    gone = FileNotFoundError(2, "No such file or directory")
    assert _walked_with(tmp_path, monkeypatch, gone) == ["chk-5"]


def test_a_local_directory_that_cannot_be_read_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a vanished directory is skipped: one the worker may not read would leave state
    out of the measurement and the retention plan, so the listing fails, naming it."""
    denied = PermissionError(13, "Permission denied")
    with pytest.raises(StorageUnavailable, match=r"chk-4: Permission denied"):
        _walked_with(tmp_path, monkeypatch, denied)
