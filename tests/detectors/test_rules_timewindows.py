"""Time windows: fishing-ban seasons every year (also across new year), night hours across
midnight belonging to the day they start, time zones, and clear errors for bad windows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gridwatch.detectors.rules.timewindows import in_window
from gridwatch.settings.timewindows import TimeWindowSettings


def at(text: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_a_ban_season_repeats_every_year() -> None:
    season = TimeWindowSettings(dates="03-01..06-30")
    for year in (2025, 2026, 2031):
        assert in_window(season, at(f"{year}-03-01T00:00:00"))
        assert in_window(season, at(f"{year}-06-30T23:59:59"))
        assert not in_window(season, at(f"{year}-02-28T23:59:59"))
        assert not in_window(season, at(f"{year}-07-01T00:00:00"))


def test_a_season_across_new_year() -> None:
    winter = TimeWindowSettings(dates="12-01..02-28")
    assert in_window(winter, at("2025-12-31T12:00:00"))
    assert in_window(winter, at("2026-01-01T00:00:00"))
    assert in_window(winter, at("2026-02-28T18:00:00"))
    assert not in_window(winter, at("2026-03-01T00:00:00"))
    assert not in_window(winter, at("2026-11-30T23:59:59"))
    leap = TimeWindowSettings(dates="02-29..03-01")
    assert in_window(leap, at("2028-02-29T10:00:00"))


def test_dated_ranges_hold_only_in_their_year() -> None:
    once = TimeWindowSettings(dates="2026-03-01..2026-06-30")
    assert in_window(once, at("2026-04-01T08:00:00"))
    assert not in_window(once, at("2027-04-01T08:00:00"))


def test_the_time_zone_decides_the_day_and_hour() -> None:
    shanghai = TimeWindowSettings(dates="03-01..06-30", timezone="Asia/Shanghai")
    # 2026-02-28 17:00 UTC is already 1 March 01:00 in Shanghai.
    assert in_window(shanghai, at("2026-02-28T17:00:00"))
    assert not in_window(TimeWindowSettings(dates="03-01..06-30"), at("2026-02-28T17:00:00"))
    evening = TimeWindowSettings(hours="18:00-22:00", timezone="Europe/Berlin")
    assert in_window(evening, at("2026-07-01T16:30:00"))  # 18:30 summer time in Berlin
    assert in_window(evening, at("2026-12-01T17:30:00"))  # 18:30 winter time
    assert not in_window(evening, at("2026-07-01T20:30:00"))


def test_night_hours_cross_midnight_and_belong_to_their_first_day() -> None:
    friday_night = TimeWindowSettings(days=["fri"], hours="22:00-06:00")
    assert in_window(friday_night, at("2026-05-15T23:00:00"))  # Friday
    assert in_window(friday_night, at("2026-05-16T03:00:00"))  # Saturday early hours
    assert not in_window(friday_night, at("2026-05-16T06:00:00"))
    assert not in_window(friday_night, at("2026-05-16T23:00:00"))  # Saturday night
    assert not in_window(friday_night, at("2026-05-15T03:00:00"))  # Thursday's night
    season_end = TimeWindowSettings(dates="03-01..06-30", hours="20:00-04:00")
    assert in_window(season_end, at("2026-07-01T02:00:00")), "30 June's night"
    assert not in_window(season_end, at("2026-03-01T02:00:00")), "the night of 28 February"


def test_whole_days_and_weekdays() -> None:
    weekend = TimeWindowSettings(days=["sat", "sun"], hours="00:00-24:00")
    assert in_window(weekend, at("2026-05-16T00:00:00"))
    assert in_window(weekend, at("2026-05-17T23:59:59"))
    assert not in_window(weekend, at("2026-05-18T00:00:00"))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("dates", "03-01-06-30", "is not a range"),
    ("dates", "02-30..03-10", "is not a day of the calendar"),
    ("dates", "03-01..2026-06-30", "mixes a yearly day"),
    ("dates", "2026-07-01..2026-03-01", "ends before it starts"),
    ("hours", "25:00-06:00", "out of range"),
    ("hours", "06:00-06:00", "is empty"),
    ("hours", "6pm-8pm", "is not HH:MM-HH:MM"),
    ("timezone", "Mars/Olympus", "unknown time zone"),
    ("days", ["friday"], "Input should be"),
])
def test_bad_windows_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        TimeWindowSettings.model_validate({field: value})
    problem = err.value.errors()[0]
    assert problem["loc"][0] == field
    assert message in problem["msg"]
