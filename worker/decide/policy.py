"""The restart policy's arithmetic: which restarts count, and how long to wait before the next."""

from __future__ import annotations

from collections.abc import Iterable

MIN_BACKOFF_STEP = 1.0


def recent_restarts(times: Iterable[float], now: float, window: float) -> tuple[float, ...]:
    """Restart times that still count against `maxRestarts`, oldest first."""
    return tuple(t for t in times if now - t < window)


def backoff_delay(recent: int, initial: float, ceiling: float) -> float:
    """Seconds to wait after the last restart when `recent` restarts happened in the window.

    The first restart is immediate (or waits `initial`); each later one doubles, up to `max`.
    """
    if recent == 0:
        return min(initial, ceiling)
    step = max(initial, MIN_BACKOFF_STEP)
    return float(min(ceiling, step * 2 ** (recent - 1)))
