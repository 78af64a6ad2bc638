"""Reports: the ten-day report on a seeded history matches figures computed independently
here (status at the period's end, stdlib statistics), per cell and per level, JSON and CSV."""

from __future__ import annotations

import csv
import io
import random
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from gridwatch.alerts.incidents.reports import period_dates
from gridwatch.alerts.store.tables import IncidentRow, TransitionRow, new_incident_id

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)

TZ = ZoneInfo("Asia/Shanghai")
# The second dekad of June 2025 in the city's time: 11 June 00:00 to 21 June 00:00 (+08:00).
DEKAD_START = datetime(2025, 6, 11, tzinfo=TZ)
DEKAD_END = datetime(2025, 6, 21, tzinfo=TZ)
CELLS = {"cell-a1": "com-a1", "cell-a2": "com-a1", "cell-b1": "com-b1"}
TOWNSHIP = {"com-a1": "twp-a", "com-b1": "twp-b"}
Move = tuple[str, str, datetime]


def history(rng: random.Random, start: datetime) -> list[Move]:
    """A plausible operator history: some never touched, some reopened, some closed."""
    moves: list[Move] = []
    t = start
    status = "new"
    plan = rng.choice(["untouched", "acked", "resolved", "closed", "false", "reopened",
                       "reopened_again", "dispatched_direct"])
    if plan == "untouched":
        return moves

    def go(to: str, after_s: float) -> None:
        nonlocal t, status
        t = t + timedelta(seconds=after_s)
        moves.append((status, to, t))
        status = to

    if plan == "false":
        go("false_alarm", rng.uniform(20, 900))
        if rng.random() < 0.5:
            go("closed", rng.uniform(60, 3600))
        return moves
    if plan == "dispatched_direct":
        go("dispatched", rng.uniform(30, 600))
    else:
        go("acknowledged", rng.uniform(10, 1200))
    if plan == "acked":
        return moves
    if plan != "dispatched_direct" and rng.random() < 0.5:
        go("dispatched", rng.uniform(60, 1800))
    go("resolved", rng.uniform(600, 4 * 86400))
    if plan == "closed":
        go("closed", rng.uniform(60, 7200))
    if plan.startswith("reopened"):
        go("acknowledged", rng.uniform(60, 7200))
        if plan == "reopened_again":
            go(rng.choice(["resolved", "false_alarm"]), rng.uniform(600, 86400))
    return moves


def seed(env: Env) -> list[tuple[str, datetime, list[Move]]]:
    """About 90 incidents from 8 to 23 June, plus two on the dekad's edges."""
    rng = random.Random(20250611)
    first = datetime(2025, 6, 8, tzinfo=TZ)
    seeded = []
    for _ in range(90):
        cell = rng.choice([*CELLS, None])
        start = first + timedelta(seconds=rng.uniform(0, 15 * 86400))
        seeded.append((cell, start, history(rng, start)))
    # Just inside and just outside the dekad, in city time (UTC 16:00 is midnight +08:00).
    seeded.append(("cell-a1", datetime(2025, 6, 10, 16, 0, tzinfo=UTC), []))
    seeded.append(("cell-a1", datetime(2025, 6, 10, 15, 59, 59, tzinfo=UTC), []))
    with env.store.writing() as session:
        for cell, start, moves in seeded:
            incident_id = new_incident_id()
            session.add(IncidentRow(
                id=incident_id, kind="illegal_fishing", camera=f"cam-{cell}", grid_cell=cell,
                zone="water", zone_name=None, severity="high",
                status=moves[-1][1] if moves else "new", start_wall=start, end_wall=None,
                start_t=0.0, end_t=None, last_seen_wall=start, last_seen_t=0.0, objects={},
                snapshot=None, clip=None, evidence_score=None, dedup_key=incident_id,
                created_at=start, updated_at=start, version=1 + len(moves),
            ))
            session.flush()
            for from_status, to_status, at in moves:
                session.add(TransitionRow(incident_id=incident_id, from_status=from_status,
                                          to_status=to_status, actor="op", note=None, at=at))
    return seeded


def expected(seeded, keep) -> dict:
    """The figures from the status each incident had at the period's end."""
    cohort = [(cell, start, [m for m in moves if m[2] < DEKAD_END])
              for cell, start, moves in seeded
              if DEKAD_START <= start < DEKAD_END and keep(cell)]
    acks, resolves = [], []
    completed = false_alarms = 0
    for _, start, moves in cohort:
        left_new = [at for f, _, at in moves if f == "new"]
        if left_new:
            acks.append((left_new[0] - start).total_seconds())
        at_end = moves[-1][1] if moves else "new"
        if at_end == "closed":
            at_end = moves[-1][0]
        if at_end in ("resolved", "false_alarm"):
            completed += 1
            false_alarms += at_end == "false_alarm"
            judged_at = [at for _, to, at in moves if to in ("resolved", "false_alarm")][-1]
            resolves.append((judged_at - start).total_seconds())
    return {"opened": len(cohort), "completed": completed, "false_alarms": false_alarms,
            "acks": acks, "resolves": resolves}


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def check_row(row: dict, want: dict) -> None:
    assert row["opened"] == want["opened"]
    assert row["completed"] == want["completed"]
    assert row["false_alarms"] == want["false_alarms"]
    assert row["acknowledged"] == len(want["acks"])
    assert row["completion_rate"] == pytest.approx(want["completed"] / want["opened"], abs=1e-4)
    assert row["false_alarm_rate"] == pytest.approx(want["false_alarms"] / want["opened"],
                                                    abs=1e-4)
    assert row["ack_median_s"] == pytest.approx(statistics.median(want["acks"]), abs=1e-3)
    assert row["ack_p90_s"] == pytest.approx(p90(want["acks"]), abs=1e-3)
    assert row["resolve_median_s"] == pytest.approx(statistics.median(want["resolves"]),
                                                    abs=1e-3)
    assert row["resolve_p90_s"] == pytest.approx(p90(want["resolves"]), abs=1e-3)


def test_dekad_report_per_cell_matches_an_independent_computation(env: Env):
    seeded = seed(env)
    chief = env.token_client("chief", "viewer", "city")

    body = chief.get("/api/reports", params={"period": "dekad", "date": "2025-06-17",
                                             "level": "cell"}).json()

    assert (body["start"], body["end"]) == (DEKAD_START.isoformat(), DEKAD_END.isoformat())
    assert body["timezone"] == "Asia/Shanghai"
    rows = {r["node"]: r for r in body["rows"]}
    assert set(rows) == set(CELLS)
    for cell in CELLS:
        want = expected(seeded, lambda c, cell=cell: c == cell)
        assert want["opened"] >= 5 and len(want["resolves"]) >= 2, "seed covers every cell"
        check_row(rows[cell], want)


def test_levels_add_up_and_the_city_counts_cameras_outside_the_grid(env: Env):
    seeded = seed(env)
    chief = env.token_client("chief", "viewer", "city")

    def rows(level: str) -> dict:
        body = chief.get("/api/reports", params={"period": "dekad", "date": "2025-06-11",
                                                 "level": level}).json()
        return {r["node"]: r for r in body["rows"]}

    communities, townships, city = rows("community"), rows("township"), rows("city")
    for community in ("com-a1", "com-b1"):
        check_row(communities[community],
                  expected(seeded, lambda c, n=community: CELLS.get(c) == n))
    for township in ("twp-a", "twp-b"):
        check_row(townships[township],
                  expected(seeded, lambda c, t=township: TOWNSHIP.get(CELLS.get(c, "")) == t))
    check_row(city["metro"], expected(seeded, lambda c: True))
    assert city["metro"]["opened"] > sum(t["opened"] for t in townships.values()), (
        "incidents of cameras outside every cell count for the city only")


def test_township_operator_report_holds_only_their_township(env: Env):
    seeded = seed(env)
    op_b = env.token_client("op-b", "operator", "twp-b")

    body = op_b.get("/api/reports", params={"period": "dekad", "date": "2025-06-20",
                                            "level": "city"}).json()
    cells = op_b.get("/api/reports", params={"period": "dekad", "date": "2025-06-20",
                                             "level": "cell"}).json()

    [row] = body["rows"]
    check_row(row, expected(seeded, lambda c: c == "cell-b1"))
    assert [r["node"] for r in cells["rows"]] == ["cell-b1"]


def test_csv_report_parses_to_the_json_figures(env: Env):
    seed(env)
    chief = env.token_client("chief", "viewer", "city")
    params = {"period": "dekad", "date": "2025-06-15", "level": "cell"}

    as_json = chief.get("/api/reports", params=params).json()
    answer = chief.get("/api/reports", params={**params, "format": "csv"})

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="gridwatch-dekad-2025-06-11-cell.csv"' in answer.headers[
        "content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["node"] for r in parsed] == [r["node"] for r in as_json["rows"]]
    for line, row in zip(parsed, as_json["rows"], strict=True):
        assert int(line["opened"]) == row["opened"]
        assert float(line["completion_rate"]) == row["completion_rate"]
        assert float(line["ack_p90_s"]) == row["ack_p90_s"]
        assert line["period"] == "dekad" and line["start"] == as_json["start"]


def test_report_refuses_unknown_period_and_level_naming_the_parameter(env: Env):
    chief = env.token_client("chief", "viewer", "city")

    bad_period = chief.get("/api/reports", params={"period": "week"})
    bad_level = chief.get("/api/reports", params={"level": "street"})
    bad_date = chief.get("/api/reports", params={"date": "2025-02-30"})

    for answer, field in ((bad_period, "period"), (bad_level, "level"), (bad_date, "date")):
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(("period", "day", "first", "after"), [
    ("day", date(2025, 6, 15), date(2025, 6, 15), date(2025, 6, 16)),
    ("dekad", date(2025, 6, 10), date(2025, 6, 1), date(2025, 6, 11)),
    ("dekad", date(2025, 6, 11), date(2025, 6, 11), date(2025, 6, 21)),
    ("dekad", date(2024, 2, 29), date(2024, 2, 21), date(2024, 3, 1)),
    ("dekad", date(2025, 12, 31), date(2025, 12, 21), date(2026, 1, 1)),
    ("month", date(2025, 2, 14), date(2025, 2, 1), date(2025, 3, 1)),
])
def test_period_bounds_follow_the_calendar(period, day, first, after):
    assert period_dates(period, day) == (first, after)
