"""Cameras and their state, limited to the cells the user may see."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from gridwatch.ingest.state import CameraHealth
from gridwatch.web.auth import CurrentUser
from gridwatch.web.views import CameraHealthSource


def build(service: CameraHealthSource) -> APIRouter:
    router = APIRouter(prefix="/api/cameras", tags=["cameras"])

    @router.get("")
    def cameras(user: CurrentUser) -> list[CameraHealth]:
        return [c for c in service.camera_health() if user.can_see(c.grid_cell)]

    @router.get("/{camera_id}", responses={404: {"description": "No such camera in scope"}})
    def camera(camera_id: str, user: CurrentUser) -> CameraHealth:
        for cam in service.camera_health():
            if cam.id == camera_id and user.can_see(cam.grid_cell):
                return cam
        raise HTTPException(404, f"camera {camera_id!r} not found")

    return router
