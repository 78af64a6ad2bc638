"""Whether a rule is armed: its time windows checked against a frame's wall-clock time.

Windows are calendar things, so they are checked in the window's own time zone; durations
(dwell, hysteresis) stay in media time. A night window that crosses midnight belongs to the
day it starts on: with `days: [fri]` and `hours: "22:00-06:00"`, Saturday 03:00 is inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from gridwatch.settings.timewindows import WEEKDAYS, DateSpan, TimeWindowSettings


def armed(windows: Sequence[TimeWindowSettings], wall: float) -> bool:
    """Inside any of `windows` at the Unix time `wall` (no windows: always armed)."""
    return not windows or any(in_window(w, wall) for w in windows)


def in_window(window: TimeWindowSettings, wall: float) -> bool:
    """Is the Unix time `wall` inside `window`?"""
    local = datetime.fromtimestamp(wall, window.zone)
    day = local.date()
    if window.hour_span is not None:
        start, end = window.hour_span
        now = local.time().replace(tzinfo=None)
        if end is None or start < end:
            if now < start or (end is not None and now >= end):
                return False
        elif now < end:
            day -= timedelta(days=1)  # the early hours of a night window started yesterday
        elif now < start:
            return False
    if window.days is not None and WEEKDAYS[day.weekday()] not in window.days:
        return False
    return window.date_span is None or _in_dates(day, window.date_span)


def _in_dates(day: date, dates: DateSpan) -> bool:
    start, end = dates
    if len(start) == 3:
        return start <= (day.year, day.month, day.day) <= end
    md = (day.month, day.day)
    if start <= end:
        return start <= md <= end
    return md >= start or md <= end  # a season across new year
