"""The tests' one way of waiting: polls that start fast and slow down to twice a second."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.waiting import LONGEST_INTERVAL, intervals, wait_until


def test_pauses_grow_from_the_first_to_the_longest_and_stay_there() -> None:
    pauses = list(itertools.islice(intervals(0.05, 0.5), 12))
    assert pauses[0] == 0.05
    assert all(b > a for a, b in itertools.pairwise(pauses[:7]))
    assert pauses[-1] == LONGEST_INTERVAL and max(pauses) == LONGEST_INTERVAL


def test_a_condition_met_at_once_returns_its_value_without_pausing() -> None:
    started = time.monotonic()
    assert wait_until(lambda: "met", 5, "met") == "met"
    assert time.monotonic() - started < 0.05


def test_a_condition_never_met_fails_at_its_deadline_naming_it_and_the_last_error() -> None:
    def broken() -> None:
        raise ValueError("not yet")

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.3s waiting for the thing "
                                             r"\(ValueError\('not yet'\)\)"):
        wait_until(broken, 0.3, "the thing")
    assert 0.3 <= time.monotonic() - started < 0.6, "the last pause ends at the deadline"
