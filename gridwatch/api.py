"""The HTTP API (FastAPI): health, cameras with their state, incidents and their evidence.

The app is built around a `ServiceView` so that the same routes serve the running service
and tests; it never touches ingest or detection directly, only their published state.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

import gridwatch
from alerts.evidence import EvidenceWriter
from alerts.lifecycle import InvalidTransition
from alerts.storage import ConcurrentUpdate, IncidentNotFound, IncidentStore

log = logging.getLogger(__name__)


class ServiceView(Protocol):
    """What the API needs from the running service."""

    store: IncidentStore
    evidence: EvidenceWriter

    def camera_health(self) -> list[dict[str, Any]]: ...


class TransitionRequest(BaseModel):
    to: str = Field(description="Target status, e.g. acknowledged, dispatched, resolved")
    actor: str = Field(min_length=1, description="Who acts (operator name)")
    note: str | None = None
    expected_version: int | None = Field(
        default=None, description="The version the operator saw; refused if it changed since",
    )


def create_app(service: ServiceView) -> FastAPI:
    app = FastAPI(
        title="Gridwatch",
        version=gridwatch.__version__,
        description="Camera health and the grid incident queue of a Gridwatch node.",
    )

    def camera_or_404(camera_id: str) -> dict[str, Any]:
        for cam in service.camera_health():
            if cam["id"] == camera_id:
                return cam
        raise HTTPException(404, f"camera {camera_id!r} not found")

    @app.get("/api/health", tags=["health"])
    def health() -> dict[str, Any]:
        states: dict[str, int] = {}
        for cam in service.camera_health():
            states[cam["state"]] = states.get(cam["state"], 0) + 1
        return {"status": "ok", "version": gridwatch.__version__, "cameras": states,
                "incidents": service.store.counts_by_status()}

    @app.get("/api/cameras", tags=["cameras"])
    def cameras() -> list[dict[str, Any]]:
        return service.camera_health()

    @app.get("/api/cameras/{camera_id}", tags=["cameras"])
    def camera(camera_id: str) -> dict[str, Any]:
        return camera_or_404(camera_id)

    @app.get("/api/incidents", tags=["incidents"])
    def incidents(
        camera: str | None = None,
        kind: str | None = None,
        status: Annotated[list[str] | None, Query()] = None,
        zone: str | None = None,
        grid_cell: Annotated[list[str] | None, Query()] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        try:
            page = service.store.list_incidents(
                camera=camera, kind=kind, status=status, zone=zone,
                grid_cells=set(grid_cell) if grid_cell else None, since=since, until=until,
                limit=limit, offset=offset, cursor=cursor,
            )
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return {"items": [i.to_api() for i in page.items], "next_cursor": page.next_cursor}

    @app.get("/api/incidents/{incident_id}", tags=["incidents"])
    def incident(incident_id: str) -> dict[str, Any]:
        try:
            found = service.store.get_incident(incident_id)
        except IncidentNotFound as err:
            raise HTTPException(404, str(err)) from None
        body = found.to_api()
        body["history"] = [t.to_api() for t in found.history]
        return body

    @app.get("/api/incidents/{incident_id}/snapshot", tags=["incidents"],
             response_class=FileResponse)
    def snapshot(incident_id: str) -> FileResponse:
        try:
            found = service.store.get_incident(incident_id)
        except IncidentNotFound as err:
            raise HTTPException(404, str(err)) from None
        if not found.snapshot:
            raise HTTPException(404, f"incident {incident_id} has no snapshot yet")
        path = service.evidence.path_of(found.snapshot)
        if not path.is_file():
            raise HTTPException(404, f"snapshot of incident {incident_id} is missing on disk")
        return FileResponse(path, media_type="image/jpeg")

    @app.post("/api/incidents/{incident_id}/transitions", tags=["incidents"])
    def transition(incident_id: str, body: TransitionRequest) -> dict[str, Any]:
        try:
            changed = service.store.transition(
                incident_id, body.to, body.actor, body.note, body.expected_version,
            )
        except IncidentNotFound as err:
            raise HTTPException(404, str(err)) from None
        except (InvalidTransition, ConcurrentUpdate) as err:
            raise HTTPException(409, str(err)) from None
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return changed.to_api()

    return app
