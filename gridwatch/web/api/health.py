"""Liveness for load balancers and monitors: the only route without a login."""

from __future__ import annotations

from fastapi import APIRouter

import gridwatch
from gridwatch.web.api.schemas import Health
from gridwatch.web.views import CameraHealthSource


def build(service: CameraHealthSource) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["health"])

    @router.get("/health")
    def health() -> Health:
        """The version and how many cameras are in each state."""
        states: dict[str, int] = {}
        for cam in service.camera_health():
            states[cam.state.value] = states.get(cam.state.value, 0) + 1
        return Health(status="ok", version=gridwatch.__version__, cameras=states)

    return router
