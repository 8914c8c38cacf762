from __future__ import annotations

import os
from pathlib import Path

from common.flink.jobids import flink_job_id, name_prefix
from common.store.records import Checkpoint
from tests.unit.fakestorage import FakeStorage
from worker.decide.restore_rules import newest
from worker.restore import checkpoint_dir, completing, from_flink_stats, retained_in


def test_newest_is_the_last_completed_whatever_its_source() -> None:
    old = Checkpoint("file:///c/chk-9", 9, 1_000)
    new = Checkpoint("file:///c/chk-3", 3, 2_000)  # ids restart after a restore; time decides
    assert newest([old, None, new]) == new
    assert newest([]) is None


def test_flink_stats_give_completed_savepoint_and_restored() -> None:
    stats = {"latest": {
        "completed": {"id": 5, "external_path": "file:/c/chk-5", "latest_ack_timestamp": 500},
        "savepoint": {"id": 4, "external_path": "file:/s/sp-4", "latest_ack_timestamp": 400},
        "restored": {"id": 2, "external_path": "file:/c/chk-2", "is_savepoint": False},
        "failed": None,
    }}
    found = from_flink_stats(stats)
    assert [(c.id, c.kind) for c in found] == [(5, "checkpoint"), (4, "savepoint"),
                                               (2, "checkpoint")]
    assert newest(found) is not None and newest(found).id == 5  # type: ignore[union-attr]
    assert from_flink_stats(None) == []


def test_a_checkpoint_in_progress_is_read_with_its_last_acknowledgement() -> None:
    history = [
        {"id": 6, "status": "IN_PROGRESS", "trigger_timestamp": 590, "latest_ack_timestamp": 610,
         "external_path": "s3://b/c/chk-6"},
        {"id": 5, "status": "COMPLETED", "latest_ack_timestamp": 500},
    ]
    stats = {"counts": {"in_progress": 1}, "history": history}
    pending = completing(stats)
    assert pending is not None and (pending.id, pending.timestamp) == (6, 610)
    history[0]["latest_ack_timestamp"] = 0  # nothing acknowledged yet: its trigger
    assert completing(stats) == Checkpoint("s3://b/c/chk-6", 6, 590)
    assert completing({"counts": {"in_progress": 0}, "history": history[1:]}) is None
    assert completing(None) is None


def test_job_level_checkpoint_dir_wins_over_the_cluster() -> None:
    cluster = {"execution.checkpointing.dir": "file:///cluster"}
    assert checkpoint_dir({}, cluster) == "file:///cluster"
    assert checkpoint_dir({"state.checkpoints.dir": "file:///job"}, cluster) == "file:///job"
    assert checkpoint_dir({}, {}) is None


def test_retained_lists_only_complete_checkpoints_of_this_job_on_disk(tmp_path: Path) -> None:
    def checkpoint(job_id: str, number: int, mtime: float, complete: bool = True) -> None:
        path = tmp_path / job_id / f"chk-{number}"
        path.mkdir(parents=True)
        if complete:
            (path / "_metadata").write_bytes(b"x")
            os.utime(path / "_metadata", (mtime, mtime))

    checkpoint(flink_job_id("mine", 1), 7, 1000)
    checkpoint(flink_job_id("mine", 2), 2, 2000)
    checkpoint(flink_job_id("mine", 2), 3, 3000, complete=False)  # still being written
    checkpoint(flink_job_id("other", 1), 99, 9000)
    found = retained_in(tmp_path.as_uri(), name_prefix("mine"))
    assert sorted(c.id for c in found) == [2, 7]
    assert newest(found) is not None and newest(found).path.endswith("chk-2")  # type: ignore[union-attr]


def test_retained_lists_checkpoints_on_object_storage_in_numeric_order() -> None:
    """Object storage lists keys in text order (chk-10 before chk-9): the newest checkpoint is
    the one completed last, and the number breaks a tie."""
    mine1, mine2, other = (flink_job_id("mine", 1), flink_job_id("mine", 2),
                           flink_job_id("other", 1))
    storage = FakeStorage({f"s3://b/ckpt/{mine1}/chk-9/_metadata": 5,
                           f"s3://b/ckpt/{mine1}/chk-10/_metadata": 5,
                           f"s3://b/ckpt/{mine1}/chk-11/part-0": 5,  # no _metadata: incomplete
                           f"s3://b/ckpt/{mine2}/shared/x": 5,
                           f"s3://b/ckpt/{other}/chk-99/_metadata": 5})
    found = retained_in("s3://b/ckpt", name_prefix("mine"), storage)
    assert sorted(c.id for c in found) == [9, 10]
    assert newest(found).path == f"s3://b/ckpt/{mine1}/chk-10"  # type: ignore[union-attr]


class Counting(FakeStorage):
    def __init__(self, objects: dict[str, int]) -> None:
        super().__init__(objects)
        self.asked: list[str] = []

    def exists(self, uri: str) -> bool:
        self.asked.append(uri)
        return super().exists(uri)


class Target:
    """What gathering asks of a deployment target: its configuration, Flink's statistics."""

    def __init__(self, storage: Counting, stats: dict[str, object]) -> None:
        self.storage = storage
        self.stats = stats

    def config(self) -> dict[str, str]:
        return {"execution.checkpointing.dir": "s3://b/ckpt"}

    def checkpoints(self, job_id: str) -> dict[str, object]:
        return self.stats


def test_gathering_asks_the_storage_only_of_points_its_listing_did_not_show_complete() -> None:
    """A point the listing found with its `_metadata` is complete; one named by several
    sources (ZooKeeper, Flink's statistics) is asked about once; a missing one is rejected."""
    from tests.unit.decisions_util import job_id, record, status
    from worker.decide.observation import Need
    from worker.restore import gather

    listed, gone = f"s3://b/ckpt/{job_id(3)}/chk-7", f"s3://b/ckpt/{job_id(3)}/chk-8"
    storage = Counting({f"{listed}/_metadata": 5})
    stats = {"latest": {"completed": {"id": 8, "external_path": gone,
                                      "latest_ack_timestamp": 9}}}
    current = status(last_checkpoint=Checkpoint(gone, 8, 9))
    found = gather(Need.AFTER, record(), current, Target(storage, stats))  # type: ignore[arg-type]
    assert storage.asked == [f"{gone}/_metadata"]
    assert set(found.problems) == {gone} and listed in {p.path for p in found.points}
