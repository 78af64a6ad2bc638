"""The operators' console: a page served by the service, its assets, its live feeds.

Everything the page needs ships in `static/` (hand-written HTML, CSS and JavaScript
modules, no framework and nothing fetched from the internet), because control rooms are
often cut off from it. The page itself is public; every piece of data it shows comes
from authenticated API routes, and a 401 from any of them brings the login form back.

`build(service)` returns one router for `create_app`: the page, the assets, the console's
metadata, the event stream (`gridwatch.web.live_feed`) and the live view (`gridwatch.web.webrtc`).
Its
lifespan closes the streams and the peer connections when the server stops.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from gridwatch.alerts.incidents.lifecycle import ALLOWED, Status
from gridwatch.common.severity import SEVERITIES
from gridwatch.web import live_feed, webrtc
from gridwatch.web.api.schemas import ConsoleMeta
from gridwatch.web.auth import CurrentUser
from gridwatch.web.views import ServiceView

STATIC_DIR = Path(__file__).resolve().parent / "static"
# JavaScript modules are refused by browsers unless served with a JavaScript type.
mimetypes.add_type("text/javascript", ".js")


def build(service: ServiceView, *, recheck_s: float = live_feed.RECHECK_S) -> APIRouter:
    """`recheck_s`: how often an open event stream checks that its session still holds."""
    feed = live_feed.LiveFeed(service.store, service.camera_health, recheck_s=recheck_s)
    views = webrtc.LiveViews(service)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        feed.start()
        try:
            yield
        finally:
            feed.close()
            await views.close_all()

    routes = APIRouter(lifespan=lifespan)
    routes.include_router(live_feed.router(feed, service))
    routes.include_router(webrtc.router(views, service))

    @routes.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @routes.get("/console", include_in_schema=False)
    def console_no_slash() -> RedirectResponse:
        return RedirectResponse("/console/")

    @routes.get("/console/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @routes.get("/console/static/{path:path}", include_in_schema=False)
    def asset(path: str) -> FileResponse:
        file = (STATIC_DIR / path).resolve()
        if not file.is_relative_to(STATIC_DIR) or not file.is_file():
            raise HTTPException(404, f"no console asset {path!r}")
        media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return FileResponse(file, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @routes.get("/api/console/meta", tags=["console"], response_model=ConsoleMeta)
    def meta(user: CurrentUser) -> dict[str, Any]:
        """What the console's menus and buttons offer: statuses and the moves allowed from
        each, severities, and the incident kinds of the cameras the user may see."""
        config = getattr(service, "config", None)
        cameras = [c for c in (config.cameras if config else []) if user.can_see(c.grid_cell)]
        kinds = sorted({r.kind for c in cameras for z in c.zones for r in z.rules})
        return {
            "statuses": [s.value for s in Status],
            "transitions": {s.value: sorted(t.value for t in ALLOWED[s]) for s in Status},
            "severities": list(SEVERITIES),
            "kinds": kinds,
            "live_sessions": len(views.sessions),
            "max_live_sessions": views.max_sessions,
        }

    return routes
