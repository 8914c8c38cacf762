from __future__ import annotations

from click.testing import CliRunner

from common.settings import Timings
from scheduler.cli.main import cli
from scheduler.master.pool.runtime import pool_size


def test_consistent_timings_pass() -> None:
    assert Timings(session_timeout=10, poll_interval=1, cycle_interval=1).problems() == []


def test_poll_interval_must_fit_inside_the_local_deadline() -> None:
    [problem] = Timings(session_timeout=4, poll_interval=3).problems()
    assert "poll interval 3s must be shorter than the local deadline 2.0s" in problem


def test_master_refuses_contradictory_timings_before_connecting(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["--zk", "127.0.0.1:1", "--session-timeout", "3",
                                      "master", "--config-dir", ".", "--cycle-interval", "5"])
    assert result.exit_code == 2
    assert "contradictory timing settings: master cycle 5.0s must be shorter than the " \
           "session timeout 3.0s" in result.output


def test_pool_has_a_slot_for_every_job_plus_spares() -> None:
    assert pool_size(jobs=0, slots_per_worker=1, spares=1) == 1
    assert pool_size(jobs=5, slots_per_worker=1, spares=1) == 6
    assert pool_size(jobs=5, slots_per_worker=2, spares=1) == 4


def test_jobs_waiting_for_a_slot_get_workers_of_their_own() -> None:
    """Ten jobs on 1-slot workers, a spare: 11. Three of them wait although 11 workers are
    registered (static workers hold fewer slots, or others took more): 3 more, plus the spare."""
    assert pool_size(jobs=10, slots_per_worker=1, spares=1, workers=11, waiting=3) == 15
    assert pool_size(jobs=10, slots_per_worker=2, spares=0, workers=4, waiting=3) == 6
    assert pool_size(jobs=10, slots_per_worker=1, spares=1, workers=3, waiting=0) == 11
