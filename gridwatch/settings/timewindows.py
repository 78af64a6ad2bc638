"""When a rule is armed: hours of the day, days of the week and date ranges, in a time zone.

Windows are calendar things (a fishing-ban season, night hours), so the rule checks them
against the frame's wall-clock time in the window's own time zone. The text forms are parsed
once here, at load, so that a wrong range is a configuration error naming its field.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, field_validator

from gridwatch.settings.base import StrictSettings

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HourSpan = tuple[time, time | None]
DateSpan = tuple[tuple[int, ...], tuple[int, ...]]
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_YEARLY = re.compile(r"^(\d{2})-(\d{2})$")
_DATED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class TimeWindowSettings(StrictSettings):
    """One window; a rule with several is armed inside any of them (none: always armed)."""

    timezone: str = Field(default="UTC", description="IANA name, e.g. Asia/Shanghai.")
    dates: str | None = Field(
        default=None,
        description="'MM-DD..MM-DD' every year (may cross new year, e.g. '12-01..02-28') or "
        "'YYYY-MM-DD..YYYY-MM-DD'; both ends included.",
    )
    days: list[Weekday] | None = Field(default=None, min_length=1)
    hours: str | None = Field(
        default=None, description="'HH:MM-HH:MM', end excluded; may cross midnight.",
    )

    _zone: ZoneInfo = PrivateAttr()
    _hours: HourSpan | None = PrivateAttr(default=None)
    _dates: DateSpan | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as "
                             "Europe/Berlin or Asia/Shanghai)") from None
        return v

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, v: str | None) -> str | None:
        if v is not None:
            _parse_hours(v)
        return v

    @field_validator("dates")
    @classmethod
    def _valid_dates(cls, v: str | None) -> str | None:
        if v is not None:
            _parse_dates(v)
        return v

    def model_post_init(self, _context: object) -> None:
        self._zone = ZoneInfo(self.timezone)
        self._hours = _parse_hours(self.hours) if self.hours else None
        self._dates = _parse_dates(self.dates) if self.dates else None

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def hour_span(self) -> HourSpan | None:
        """Start and end of `hours` (end None: midnight at the end of the day)."""
        return self._hours

    @property
    def date_span(self) -> DateSpan | None:
        """First and last day of `dates`, (month, day) or (year, month, day)."""
        return self._dates


def _parse_hours(text: str) -> HourSpan:
    m = _HOURS.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM (e.g. '22:00-06:00')")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} has an hour or minute out of range")
    start = time(h1, m1)
    end = None if h2 == 24 else time(h2, m2)
    if end == start:
        raise ValueError(f"{text!r} is empty: start and end are equal (use 00:00-24:00)")
    return start, end


def _parse_dates(text: str) -> DateSpan:
    parts = [p.strip() for p in text.split("..")]
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not a range 'MM-DD..MM-DD' or 'YYYY-MM-DD..YYYY-MM-DD'")
    ends = [_parse_day(p) for p in parts]
    if len(ends[0]) != len(ends[1]):
        raise ValueError(f"{text!r} mixes a yearly day (MM-DD) with a dated one (YYYY-MM-DD)")
    if len(ends[0]) == 3 and ends[0] > ends[1]:
        raise ValueError(f"{text!r} ends before it starts")
    return ends[0], ends[1]


def _parse_day(text: str) -> tuple[int, ...]:
    if m := _YEARLY.match(text):
        month, day = int(m[1]), int(m[2])
        _check_day(2000, month, day, text)  # 2000 is a leap year: 02-29 is a valid yearly day
        return month, day
    if m := _DATED.match(text):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
        _check_day(year, month, day, text)
        return year, month, day
    raise ValueError(f"{text!r} is neither MM-DD nor YYYY-MM-DD")


def _check_day(year: int, month: int, day: int, text: str) -> None:
    try:
        date(year, month, day)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the calendar") from None
