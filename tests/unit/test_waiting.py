"""The tests' one way of waiting: polls that start fast and slow down to twice a second."""

from __future__ import annotations

import itertools
import types

import pytest

from tests import waiting
from tests.waiting import LONGEST_INTERVAL, intervals, wait_until


class FakeClock:
    """`time` for `tests.waiting`: sleeping moves the clock, and each pause is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(waiting, "time", types.SimpleNamespace(monotonic=fake.monotonic,
                                                               sleep=fake.sleep))
    return fake


def test_pauses_grow_from_the_first_to_the_longest_and_stay_there() -> None:
    pauses = list(itertools.islice(intervals(0.05, 0.5), 12))
    assert pauses[0] == 0.05
    assert all(b > a for a, b in itertools.pairwise(pauses[:7]))
    assert pauses[-1] == LONGEST_INTERVAL and max(pauses) == LONGEST_INTERVAL


def test_a_condition_met_at_once_returns_its_value_without_pausing(clock: FakeClock) -> None:
    assert wait_until(lambda: "met", 5, "met") == "met"
    assert clock.pauses == []


def test_a_condition_met_later_is_asked_about_at_the_growing_pauses(clock: FakeClock) -> None:
    assert wait_until(lambda: clock.now >= 2.0, 10, "two seconds") is True
    assert clock.pauses == list(itertools.islice(intervals(), len(clock.pauses)))


def test_a_condition_never_met_fails_at_its_deadline_naming_it_and_the_last_error(
        clock: FakeClock) -> None:
    def broken() -> None:
        raise ValueError("not yet")

    with pytest.raises(AssertionError, match=r"timed out after 3s waiting for the thing "
                                             r"\(ValueError\('not yet'\)\)"):
        wait_until(broken, 3, "the thing")
    assert clock.now == pytest.approx(3.0), "the last pause ends at the deadline"
    assert max(clock.pauses) == LONGEST_INTERVAL


def test_a_given_interval_is_kept_for_the_whole_wait(clock: FakeClock) -> None:
    wait_until(lambda: clock.now >= 1.0, 5, "one second", interval=0.25)
    assert clock.pauses == [0.25, 0.25, 0.25, 0.25]
