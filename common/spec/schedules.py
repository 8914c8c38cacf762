"""Savepoint schedules: a 5-field cron expression, or an interval written as a duration."""

from __future__ import annotations

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from common.durations import parse_duration


def schedule_trigger(schedule: str) -> BaseTrigger:
    """An APScheduler trigger; ValueError says what a schedule must look like."""
    text = schedule.strip()
    if len(text.split()) == 5:
        try:
            return CronTrigger.from_crontab(text, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"bad cron expression {schedule!r}: {exc}") from None
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"schedule {schedule!r} is neither a 5-field cron expression "
            "(like '0 */6 * * *') nor an interval (like 30m)"
        ) from None
    if seconds < 1:
        raise ValueError(f"schedule interval {schedule!r} is shorter than 1s")
    return IntervalTrigger(seconds=seconds, timezone="UTC")
