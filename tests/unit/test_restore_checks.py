"""Restore points are checked before use, and a failed restore is told apart from a failing
job: the pure half of DESIGN rule 7, with Flink's own messages (read off Flink 2.3)."""

from __future__ import annotations

from pathlib import Path

from common.errors import StorageUnavailable
from common.flink.jobids import flink_job_id
from common.store.records import Checkpoint, JobStatus, RejectedRestore
from tests.unit.fakestorage import FakeStorage
from worker.decide.orphans import highest_attempt, live_attempt
from worker.decide.restore_rules import (
    FailureClass,
    RestoreChoice,
    choose,
    classify_failure,
    no_restore_point_reason,
)
from worker.restore import from_flink_stats, rejection, reports_placeholder

PLACEHOLDER = "<checkpoint-not-externally-addressable>"
MISSING_METADATA = ("java.io.FileNotFoundException: Cannot find meta data file '_metadata' in "
                    "directory 'file:/ckpt/j/chk-2'. Please try to load the checkpoint/savepoint "
                    "directly from the metadata file instead of the directory.")
MISSING_DIR = ("java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory "
               "'file:///ckpt/j/chk-2' on file system 'file'.")
CORRUPT = ("java.io.IOException: Unexpected magic number. This can have multiple reasons: (1) You "
           "are trying to load a Flink 1.0 savepoint, ...")
UNMAPPED = ("java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint "
            "file:/ckpt/j/chk-2. Cannot map checkpoint/savepoint state for operator abc to the "
            "new program, because the operator is not available in the new program. If you want "
            "to allow to skip this, you can set the --allowNonRestoredState option on the CLI.")
JOB_BUG = "java.lang.IllegalStateException: injected failure: consumed /tmp/marker"


def checkpoint(tmp_path: Path, number: int, *, metadata: bool = True) -> Checkpoint:
    directory = tmp_path / f"chk-{number}"
    directory.mkdir(parents=True)
    if metadata:
        (directory / "_metadata").write_bytes(b"\x00")
    return Checkpoint(directory.as_uri(), number, number * 1000)


def test_placeholder_and_bare_words_are_never_restore_points(tmp_path: Path) -> None:
    assert "placeholder" in (rejection(PLACEHOLDER) or "")
    assert "not a URI" in (rejection("chk-3") or "")
    assert rejection("") == "empty path"


def test_local_checkpoint_needs_its_metadata(tmp_path: Path) -> None:
    good = checkpoint(tmp_path, 1)
    broken = checkpoint(tmp_path, 2, metadata=False)
    assert rejection(good.path) is None
    assert rejection(str(tmp_path / "chk-1")) is None, "a plain absolute path is local too"
    assert rejection(str(tmp_path / "chk-1" / "_metadata")) is None, "the metadata file itself"
    assert "_metadata" in (rejection(broken.path) or "")
    assert "does not exist" in (rejection((tmp_path / "gone").as_uri()) or "")


def test_a_checkpoint_on_object_storage_needs_its_metadata_object() -> None:
    storage = FakeStorage({"s3://bucket/ckpt/j/chk-9/_metadata": 10})
    assert rejection("s3://bucket/ckpt/j/chk-9", storage) is None
    assert rejection("s3a://bucket/ckpt/j/chk-9/_metadata", FakeStorage(
        {"s3a://bucket/ckpt/j/chk-9/_metadata": 1})) is None, "the metadata object itself"
    assert "has no _metadata object" in (rejection("s3://bucket/ckpt/j/chk-8", storage) or "")
    assert rejection("hdfs://nn/ckpt/j/chk-9") is None, "left to Flink"


def test_object_storage_that_does_not_answer_is_no_rejection() -> None:
    """An unreachable store raises: the start waits for it, it never passes points over."""
    storage = FakeStorage({}, down="connection refused")
    try:
        rejection("s3://bucket/ckpt/j/chk-9", storage)
    except StorageUnavailable as exc:
        assert "connection refused" in str(exc)
    else:
        raise AssertionError("an unreachable store passed a point over or let it through")


def test_storage_this_process_cannot_see_is_left_to_flink(tmp_path: Path) -> None:
    """A worker without Flink's checkpoint volume must not reject every checkpoint on it;
    a checkpoint deleted from storage it does see is rejected."""
    job_id = flink_job_id("orders", 3)
    assert rejection(f"file:///mnt/flink-only/{job_id}/chk-7") is None
    assert rejection("file:///mnt/flink-only/savepoint-1a2b") is None
    (tmp_path / "checkpoints").mkdir()
    gone = (tmp_path / "checkpoints" / job_id / "chk-7").as_uri()
    assert "does not exist" in (rejection(gone) or "")


def test_choose_passes_over_broken_and_rejected_points_newest_first(tmp_path: Path) -> None:
    oldest, older = checkpoint(tmp_path, 1), checkpoint(tmp_path, 2)
    broken = checkpoint(tmp_path, 3, metadata=False)
    placeholder = Checkpoint(PLACEHOLDER, 4, 4000)
    choice = choose([older, placeholder, None, broken, oldest], frozenset({older.path}), 7.0,
                    check=rejection)
    assert choice.point == oldest
    assert [r.path for r in choice.rejected] == [PLACEHOLDER, broken.path]
    assert all(r.at == 7.0 for r in choice.rejected)
    assert not choice.exhausted


def test_choose_reports_exhaustion_only_when_candidates_existed(tmp_path: Path) -> None:
    broken = checkpoint(tmp_path, 1, metadata=False)
    assert choose([broken], frozenset(), 0.0, check=rejection).exhausted
    assert choose([], frozenset(), 0.0, check=rejection) == RestoreChoice(None, (), 0)
    assert not choose([], frozenset(), 0.0, check=rejection).exhausted, (
        "nothing to lose: a first start")
    assert not RestoreChoice.of(None).exhausted, "empty state asked for on purpose"


def test_same_path_from_two_sources_counts_once(tmp_path: Path) -> None:
    point = checkpoint(tmp_path, 5)
    unknown_time = Checkpoint(point.path, 5, 0)
    assert choose([unknown_time, point], frozenset(), 0.0, check=rejection) == (
        RestoreChoice(point, (), 1))


def test_flink_messages_are_classified() -> None:
    restored = "file:/ckpt/j/chk-2"
    for cause in (MISSING_METADATA, MISSING_DIR, CORRUPT):
        assert classify_failure(cause, restored, ever_ran=False) is FailureClass.RESTORE_UNREADABLE
        assert classify_failure(cause, "", ever_ran=False) is FailureClass.ORDINARY
    assert classify_failure(UNMAPPED, restored, ever_ran=False) is (
        FailureClass.RESTORE_INCOMPATIBLE)
    assert classify_failure(UNMAPPED, restored, ever_ran=True) is (
        FailureClass.RESTORE_INCOMPATIBLE)
    assert classify_failure(JOB_BUG, restored, ever_ran=False) is FailureClass.ORDINARY
    assert classify_failure(MISSING_DIR, restored, ever_ran=True) is FailureClass.ORDINARY, (
        "an attempt that ran restored fine; a later file error is the job's")


def test_io_error_naming_the_restore_point_is_a_restore_failure() -> None:
    cause = "java.io.EOFException: reading /ckpt/j/chk-2/_metadata: Exception in stream"
    assert classify_failure(cause, "file:///ckpt/j/chk-2", ever_ran=False) is (
        FailureClass.RESTORE_UNREADABLE)


def test_flink_placeholder_is_no_checkpoint_but_is_reported() -> None:
    stats = {"latest": {"completed": {"id": 7, "external_path": PLACEHOLDER,
                                      "latest_ack_timestamp": 700},
                        "restored": {"id": 3, "external_path": PLACEHOLDER}}}
    assert from_flink_stats(stats) == []
    assert reports_placeholder(stats)
    assert not reports_placeholder({"latest": {"completed": {"external_path": "file:/c/chk-1"}}})
    assert not reports_placeholder(None)


def test_rejected_restores_are_remembered_once_and_bounded() -> None:
    status = JobStatus()
    for number in range(30):
        status = status.with_rejected(RejectedRestore(f"file:/c/chk-{number}", "gone", 0.0))
    status = status.with_rejected(RejectedRestore("file:/c/chk-29", "again", 1.0))
    assert len(status.rejected_restores) == 20
    assert status.rejected_restores[-1].reason == "gone"
    assert JobStatus.from_json(status.to_json()) == status


def test_no_restore_point_names_what_was_rejected_and_what_resolves_it() -> None:
    reason = no_restore_point_reason("orders", [RejectedRestore("file:/c/chk-2", "no _metadata",
                                                                0.0)])
    assert "file:/c/chk-2: no _metadata" in reason
    assert "flinksched restart orders --from PATH" in reason
    assert "flinksched restart orders --from-empty" in reason


def test_attempts_alive_beside_the_status_are_adopted_not_restarted() -> None:
    name = "orders"
    listed = {flink_job_id(name, 3): "CANCELED", flink_job_id(name, 5): "RUNNING",
              flink_job_id(name, 4): "FAILED", flink_job_id("other", 9): "RUNNING"}
    assert live_attempt(listed, name, 3) == (5, flink_job_id(name, 5))
    assert live_attempt(listed, name, 0) == (5, flink_job_id(name, 5))
    assert live_attempt(listed, name, 5) is None
    assert live_attempt(listed, name, 7) == (5, flink_job_id(name, 5))  # a rolled-forward status
    assert highest_attempt(listed, name) == 5
    assert highest_attempt({}, name) == 0


def test_one_place_spelt_two_ways_is_one_candidate_and_one_rejection(tmp_path: Path) -> None:
    point = checkpoint(tmp_path, 4)
    flink_spelling = Checkpoint("file:" + str(tmp_path / "chk-4"), 4, 4000)
    older = checkpoint(tmp_path, 3)
    assert choose([point, flink_spelling], frozenset(), 0.0, check=rejection).candidates == 1
    rejected = frozenset({flink_spelling.path})
    assert choose([point, older], rejected, 0.0, check=rejection).point == older
