"""Completion-rate reports as JSON or CSV, counting only what the user may see."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gridwatch.alerts.incidents.reports import Period, build_report
from gridwatch.web.api.schemas import ReportBody
from gridwatch.web.auth import CurrentUser


def build(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api/reports", tags=["reports"])

    @router.get("", response_model=ReportBody, responses={200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or with `format=csv` the rows as CSV",
    }})
    def report(
        user: CurrentUser,
        period: Period = "day",
        date_: Annotated[date | None, Query(alias="date",
                                            description="Any day of the period (default: "
                                                        "today in the grid's time zone)")] = None,
        level: Literal["cell", "community", "township", "city"] = "cell",
        format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    ) -> Any:
        """Completion rate, false-alarm rate and times to acknowledge and resolve for each
        grid node of `level`, over incidents started in the period (definitions: docs/api.md)."""
        day = date_ or datetime.now(service.grid.timezone).date()
        built = build_report(service.store, service.grid, period, day, level,
                             cells=user.cells, scope=user.scope)
        if format_ == "csv":
            name = f"gridwatch-{period}-{built.start.date().isoformat()}-{level}.csv"
            return Response(built.to_csv(), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        body: dict[str, Any] = built.to_api()
        body["scope"] = user.scope
        return body

    return router
