"""Completion-rate reports per grid node: a day, a ten-day period (旬) or a month.

Every figure is about the cohort of incidents that *started* in the period, judged by what
their history says at the period's end, so a report on a closed period never changes and
the rows of one level add up to the level above. docs/api.md defines each figure.
"""

from __future__ import annotations

import calendar
import csv
import io
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from gridwatch.alerts.incidents.grid import LEVELS, Grid, GridNode, Level
from gridwatch.alerts.incidents.lifecycle import Status
from gridwatch.alerts.store.incident_store import IncidentStore

log = logging.getLogger(__name__)

Period = Literal["day", "dekad", "month"]
PERIODS: tuple[Period, ...] = ("day", "dekad", "month")
JUDGED = frozenset({Status.RESOLVED.value, Status.FALSE_ALARM.value})
CSV_COLUMNS = (
    "node", "name", "level", "period", "start", "end", "opened", "completed",
    "completion_rate", "false_alarms", "false_alarm_rate", "acknowledged", "ack_median_s",
    "ack_p90_s", "resolve_median_s", "resolve_p90_s",
)


def period_dates(period: Period, day: date) -> tuple[date, date]:
    """First day and the day after the last of the period containing `day`.

    Ten-day periods are the calendar's: days 1-10, 11-20 and 21 to the month's end
    (8 to 11 days long).
    """
    if period == "day":
        return day, day + timedelta(days=1)
    month_end = date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
    after_month = month_end + timedelta(days=1)
    if period == "month":
        return day.replace(day=1), after_month
    if period == "dekad":
        if day.day <= 10:
            return day.replace(day=1), day.replace(day=11)
        if day.day <= 20:
            return day.replace(day=11), day.replace(day=21)
        return day.replace(day=21), after_month
    raise ValueError(f"period: {period!r} is not one of {', '.join(PERIODS)}")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0-1) by linear interpolation between the closest ranks.

    This is numpy's default and Excel's PERCENTILE.INC: for sorted x0..x(n-1) it is
    x[h] interpolated at h = (n-1)q. None for no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


@dataclass(frozen=True, slots=True)
class Outcome:
    """One incident as its history stood at the period's end."""

    grid_cell: str | None
    acknowledge_s: float | None
    resolve_s: float | None
    judged: str | None


def outcome(start: datetime, transitions: Iterable[tuple[str, str, datetime]],
            grid_cell: str | None) -> Outcome:
    """Fold (from, to, at) transitions, oldest first and all before the period end.

    Acknowledged: the first transition out of `new`. Judged: the latest move into resolved
    or false_alarm not undone by a reopen (back to acknowledged); closing keeps it.
    """
    acknowledged: datetime | None = None
    judged: tuple[str, datetime] | None = None
    for from_status, to_status, at in transitions:
        if acknowledged is None and from_status == Status.NEW.value:
            acknowledged = at
        if to_status in JUDGED:
            judged = (to_status, at)
        elif to_status == Status.ACKNOWLEDGED.value and from_status in JUDGED:
            judged = None
    return Outcome(
        grid_cell,
        None if acknowledged is None else (acknowledged - start).total_seconds(),
        None if judged is None else (judged[1] - start).total_seconds(),
        None if judged is None else judged[0],
    )


@dataclass(slots=True)
class Figures:
    node: GridNode
    outcomes: list[Outcome] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        opened = len(self.outcomes)
        completed = sum(1 for o in self.outcomes if o.judged is not None)
        false_alarms = sum(1 for o in self.outcomes if o.judged == Status.FALSE_ALARM.value)
        acks = [o.acknowledge_s for o in self.outcomes if o.acknowledge_s is not None]
        resolves = [o.resolve_s for o in self.outcomes if o.resolve_s is not None]
        return {
            "node": self.node.id, "name": self.node.name, "level": self.node.level,
            "parent": self.node.parent,
            "opened": opened, "completed": completed,
            "completion_rate": _ratio(completed, opened),
            "false_alarms": false_alarms, "false_alarm_rate": _ratio(false_alarms, opened),
            "acknowledged": len(acks),
            "ack_median_s": _round(percentile(acks, 0.5)),
            "ack_p90_s": _round(percentile(acks, 0.9)),
            "resolve_median_s": _round(percentile(resolves, 0.5)),
            "resolve_p90_s": _round(percentile(resolves, 0.9)),
        }


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    day: date
    start: datetime
    end: datetime
    level: Level
    timezone: str
    rows: list[dict[str, Any]]

    def to_api(self) -> dict[str, Any]:
        return {"period": self.period, "date": self.day.isoformat(),
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "timezone": self.timezone, "level": self.level, "rows": self.rows}

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\r\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({**row, "period": self.period, "start": self.start.isoformat(),
                             "end": self.end.isoformat()})
        return out.getvalue()


def build_report(
    store: IncidentStore,
    grid: Grid,
    period: Period,
    day: date,
    level: Level,
    cells: frozenset[str] | None = None,
    scope: str | None = None,
) -> Report:
    """Figures for each node of `level` that `scope` overlaps, counting only `cells`.

    `cells` None counts every incident (incidents of cameras outside the grid land in the
    city row only); otherwise the report holds nothing from outside those cells.
    """
    if level not in LEVELS:
        raise ValueError(f"level: {level!r} is not one of {', '.join(LEVELS)}")
    first, after = period_dates(period, day)
    tz = grid.timezone
    start = datetime.combine(first, time(), tz)
    end = datetime.combine(after, time(), tz)
    if scope is not None and scope not in grid:
        log.warning("report for scope %r, which is not in the grid: it holds nothing", scope)
        nodes = []
    else:
        nodes = [n for n in grid.nodes_at(level) if scope is None
                 or grid.contains(n.id, scope) or grid.contains(scope, n.id)]
    figures = {n.id: Figures(n) for n in nodes}
    for item in _outcomes(store, start, end, cells):
        node = _node_at(grid, item.grid_cell, level)
        if node is not None and node.id in figures:
            figures[node.id].outcomes.append(item)
    rows = [figures[n.id].to_api() for n in sorted(nodes, key=lambda n: n.id)]
    return Report(period, day, start, end, level, str(tz), rows)


def _node_at(grid: Grid, cell: str | None, level: Level) -> GridNode | None:
    for node in grid.chain(cell):
        if node.level == level:
            return node
    return None


def _outcomes(store: IncidentStore, start: datetime, end: datetime,
              cells: frozenset[str] | None) -> list[Outcome]:
    return [outcome(item.start_wall, item.moves, item.grid_cell)
            for item in store.histories_started_between(start, end, grid_cells=cells)]
