"""Whether a job's status is current: only while its writer owns the job; a job nobody has
owned past the grace is Unsupervised whatever its status says."""

from __future__ import annotations

from common.store.records import JobStatus, Phase
from common.store.supervision import Supervision, shown
from common.telemetry.jobseries import JobSample, job_lines

RUNNING = JobStatus(phase=Phase.RUNNING, worker="worker-a", attempt=3)
GRACE = 10.0


def test_a_status_written_by_its_owner_is_current() -> None:
    seen = shown(RUNNING, "worker-a", None, True, GRACE)
    assert (seen.phase, seen.supervision) == (Phase.RUNNING, Supervision.CURRENT)


def test_a_status_from_the_former_owner_is_not_shown_as_current() -> None:
    seen = shown(RUNNING, "worker-b", None, True, GRACE)
    assert seen.phase == Phase.PENDING and seen.supervised
    assert seen.reason == ("taken over by worker worker-b, whose first status is not written "
                           "yet (last status Running from worker worker-a)")


def test_no_owner_past_the_grace_is_unsupervised_whatever_the_status_says() -> None:
    seen = shown(RUNNING, None, GRACE, False, GRACE)
    assert seen.phase == Phase.UNSUPERVISED and not seen.supervised
    assert seen.reason == ("no worker supervises it for 10s: its last owner, worker worker-a, "
                           "is gone (last status Running from worker worker-a); a failure "
                           "would not be restarted")


def test_no_owner_within_the_grace_is_a_handover() -> None:
    seen = shown(RUNNING, None, GRACE - 0.5, False, GRACE)
    assert seen.phase == Phase.PENDING and seen.supervision is Supervision.HANDOVER


def test_a_reader_that_cannot_time_the_absence_asks_whether_the_writer_is_registered() -> None:
    assert shown(RUNNING, None, None, True, GRACE).supervision is Supervision.HANDOVER
    assert shown(RUNNING, None, None, False, GRACE).phase == Phase.UNSUPERVISED


def test_a_job_nobody_ever_took_is_unsupervised_past_the_grace() -> None:
    seen = shown(JobStatus(), None, 30.0, False, GRACE)
    assert seen.phase == Phase.UNSUPERVISED
    assert "no worker has taken it (no status written yet)" in seen.reason


def test_a_removed_job_needs_nobody() -> None:
    removed = JobStatus(phase=Phase.REMOVED, worker="worker-a")
    assert shown(removed, None, 100.0, False, GRACE).supervision is Supervision.CURRENT


def sample(phase: Phase, supervised: bool) -> JobSample:
    return JobSample(name="j", cluster="c", phase=phase, desired_running=True, restarts=0,
                     flink_restarts=0, last_checkpoint=None, stale_after=600, generation=1,
                     observed_generation=1, config_error=False, supervised=supervised)


def test_an_unsupervised_job_is_not_up_and_says_so() -> None:
    lines = b"".join(job_lines(sample(Phase.UNSUPERVISED, False)))
    assert b'flinksched_job_up{cluster="c",job_name="j"} 0.0' in lines
    assert b'flinksched_job_supervised{cluster="c",job_name="j"} 0.0' in lines
    assert b'flinksched_job_phase{cluster="c",job_name="j",phase="Unsupervised"} 1.0' in lines
    running = b"".join(job_lines(sample(Phase.RUNNING, True)))
    assert b'flinksched_job_up{cluster="c",job_name="j"} 1.0' in running
