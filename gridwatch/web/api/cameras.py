"""Cameras and their state, limited to the cells the user may see."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException

from gridwatch.web.auth import CurrentUser

log = logging.getLogger(__name__)


def build(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api/cameras", tags=["cameras"])

    @router.get("")
    def cameras(user: CurrentUser) -> list[dict[str, Any]]:
        return [c for c in service.camera_health() if user.can_see(c.get("grid_cell"))]

    @router.get("/{camera_id}", responses={404: {"description": "No such camera in scope"}})
    def camera(camera_id: str, user: CurrentUser) -> dict[str, Any]:
        for cam in service.camera_health():
            if cam["id"] == camera_id and user.can_see(cam.get("grid_cell")):
                return cam
        raise HTTPException(404, f"camera {camera_id!r} not found")

    return router
