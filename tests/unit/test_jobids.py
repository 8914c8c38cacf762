from __future__ import annotations

import pytest

from common.flink.jobids import attempt_of, flink_job_id, name_prefix


def test_job_id_has_name_upper_half_and_attempt_lower_half() -> None:
    job_id = flink_job_id("clickstream", 7)
    assert len(job_id) == 32 and int(job_id, 16) >= 0
    assert job_id.startswith(name_prefix("clickstream"))
    assert job_id.endswith("0000000000000007")


def test_job_id_is_deterministic_and_distinct_per_job_and_attempt() -> None:
    assert flink_job_id("a", 1) == flink_job_id("a", 1)
    assert flink_job_id("a", 1) != flink_job_id("a", 2)
    assert flink_job_id("a", 1) != flink_job_id("b", 1)


def test_attempt_of_reads_back_only_its_own_ids() -> None:
    assert attempt_of("a", flink_job_id("a", 42)) == 42
    assert attempt_of("b", flink_job_id("a", 42)) is None
    assert attempt_of("a", "not-a-job-id") is None


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        flink_job_id("a", 0)
