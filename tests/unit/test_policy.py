from __future__ import annotations

from worker.decide.policy import backoff_delay, recent_restarts


def test_first_restart_is_immediate_then_doubles_up_to_max() -> None:
    assert [backoff_delay(n, 0.0, 5.0) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_initial_backoff_is_honoured() -> None:
    assert [backoff_delay(n, 3.0, 60.0) for n in range(3)] == [3.0, 3.0, 6.0]


def test_only_restarts_inside_the_window_count() -> None:
    assert recent_restarts([10.0, 50.0, 95.0], now=100.0, window=60.0) == (50.0, 95.0)
