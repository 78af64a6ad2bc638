"""Incidents: list, detail, snapshot and operator transitions, all cut to the user's scope.

An incident outside the scope is answered exactly like a missing one (404, same message),
so incident ids of other grids cannot be probed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from gridwatch.accounts import audit
from gridwatch.accounts.store import User
from gridwatch.alerts.incidents.escalation import SYSTEM_ACTOR
from gridwatch.alerts.incidents.grid import UnknownGridNode
from gridwatch.alerts.incidents.lifecycle import InvalidTransition
from gridwatch.alerts.store.incident_store import (
    ConcurrentUpdate,
    IncidentNotFound,
    WriteSession,
)
from gridwatch.alerts.store.views import Incident, Transition
from gridwatch.web.api.schemas import (
    IncidentBody,
    IncidentCounts,
    IncidentDetail,
    IncidentPage,
    errors,
)
from gridwatch.web.auth import CurrentUser, Operator, client_ip


class TransitionRequest(BaseModel):
    to: str = Field(description="Target status, e.g. acknowledged, dispatched, resolved")
    note: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = Field(
        default=None, description="The version the operator saw; refused if it changed since",
    )


def build(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api/incidents", tags=["incidents"])
    not_found = errors({404: "No such incident in your scope"})

    def visible(incident_id: str, user: User) -> Incident:
        try:
            found = service.store.get_incident(incident_id)
        except IncidentNotFound as err:
            raise HTTPException(404, str(err)) from None
        if not user.can_see(found.grid_cell):
            raise HTTPException(404, str(IncidentNotFound(incident_id)))
        return found

    def scope_cells(user: User, grid_cell: list[str] | None,
                    grid_node: str | None) -> set[str] | None:
        """The cells to list: the user's scope, narrowed by the filters asked for."""
        cells: set[str] | None = None if user.cells is None else set(user.cells)
        if grid_node is not None:
            try:
                under = service.grid.cells_under(grid_node)
            except UnknownGridNode as err:
                raise HTTPException(422, f"grid_node: {err}") from None
            cells = set(under) if cells is None else cells & under
        if grid_cell:
            cells = set(grid_cell) if cells is None else cells & set(grid_cell)
        return cells

    @router.get("", response_model=IncidentPage,
                responses=errors({422: "A filter or the cursor is not valid"}))
    def incidents(
        user: CurrentUser,
        camera: str | None = None,
        kind: str | None = None,
        status: Annotated[list[str] | None, Query()] = None,
        zone: str | None = None,
        grid_cell: Annotated[list[str] | None, Query()] = None,
        grid_node: Annotated[str | None, Query(description="Any grid node: its cells")] = None,
        overdue: Annotated[bool | None, Query(description="Missed a deadline")] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Incidents newest first; `next_cursor` fetches the next page."""
        try:
            page = service.store.list_incidents(
                camera=camera, kind=kind, status=status, zone=zone,
                grid_cells=scope_cells(user, grid_cell, grid_node), overdue=overdue,
                since=since, until=until, limit=limit, offset=offset, cursor=cursor,
            )
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return {"items": [i.to_api() for i in page.items], "next_cursor": page.next_cursor}

    @router.get("/counts", response_model=IncidentCounts)
    def counts(user: CurrentUser) -> dict[str, Any]:
        """How many incidents of the user's scope are in each status."""
        cells = None if user.cells is None else set(user.cells)
        by_status = service.store.counts_by_status(grid_cells=cells)
        return {"by_status": by_status, "total": sum(by_status.values())}

    @router.get("/{incident_id}", response_model=IncidentDetail, responses=not_found)
    def incident(incident_id: str, user: CurrentUser) -> dict[str, Any]:
        """The incident with its status history and its escalations."""
        found = visible(incident_id, user)
        body = found.to_api()
        body["history"] = [t.to_api() for t in found.history]
        escalations = service.accounts.audit_entries(
            target=incident_id, actor=SYSTEM_ACTOR, actions={"incident.escalated"}, limit=10,
        )
        body["escalations"] = [
            {"at": e.at.isoformat(), **e.details} for e in reversed(escalations)
        ]
        return body

    def evidence_file(incident_id: str, user: User, kind: str, media_type: str) -> FileResponse:
        """The incident's snapshot or clip file (FileResponse answers Range requests)."""
        relative = getattr(visible(incident_id, user), kind)
        if not relative:
            raise HTTPException(404, f"incident {incident_id} has no {kind} yet")
        path = service.evidence.path_of(relative)
        if not path.is_file():
            raise HTTPException(404, f"{kind} of incident {incident_id} is missing on disk")
        return FileResponse(path, media_type=media_type)

    @router.get("/{incident_id}/snapshot", response_class=FileResponse, responses={
        **not_found, 200: {"content": {"image/jpeg": {}}, "description": "The JPEG snapshot"},
    })
    def snapshot(incident_id: str, user: CurrentUser) -> FileResponse:
        return evidence_file(incident_id, user, "snapshot", "image/jpeg")

    @router.get("/{incident_id}/clip", response_class=FileResponse, responses={
        **not_found, 200: {"content": {"video/mp4": {}}, "description": "The MP4 clip"},
        206: {"content": {"video/mp4": {}},
              "description": "The byte range asked for (Range header)"},
    })
    def clip(incident_id: str, user: CurrentUser) -> FileResponse:
        """The incident's MP4 clip; byte ranges are served so a `<video>` can seek."""
        return evidence_file(incident_id, user, "clip", "video/mp4")

    @router.post("/{incident_id}/transitions", response_model=IncidentBody, responses={
        **not_found, **errors({
            403: "Viewers cannot act",
            409: "Not allowed from the current status, or changed since read",
            422: "Not a status",
        }),
    })
    def transition(incident_id: str, body: TransitionRequest, user: Operator,
                   request: Request) -> dict[str, Any]:
        """Move the incident to another status as the logged-in user (audited)."""
        visible(incident_id, user)
        ip = client_ip(request)

        def audited(session: WriteSession, changed: Incident, made: Transition) -> None:
            audit.record(session, user.username, "incident.transition", target=incident_id,
                         ip=ip, at=made.at,
                         details={"from": made.from_status.value, "to": made.to_status.value,
                                  "note": made.note, "version": changed.version,
                                  "grid_cell": changed.grid_cell, "via": user.via})

        try:
            changed = service.store.transition(
                incident_id, body.to, user.username, body.note, body.expected_version,
                on_change=audited,
            )
        except IncidentNotFound as err:
            raise HTTPException(404, str(err)) from None
        except (InvalidTransition, ConcurrentUpdate) as err:
            raise HTTPException(409, str(err)) from None
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return changed.to_api()

    return router
