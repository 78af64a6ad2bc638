"""The HTTP API (FastAPI): health, login, cameras, incidents, the grid, reports, accounts.

The app is built around a `ServiceView` (`gridwatch.web.views`) so that the same routes serve
the running service and tests; it never touches ingest or detection directly, only their
published state.
Every route but `/api/health` and `/api/login` needs an authenticated user
(`gridwatch.web.auth.current_user`), and every answer is cut to the grid cells the user may see:
an incident or camera outside them is answered with 404, exactly as if it did not exist.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import gridwatch
from gridwatch.accounts.store import AccountConflict, AccountNotFound, OutOfScope
from gridwatch.web import console
from gridwatch.web.api import admin, cameras, health, incidents, outbox, reports, session
from gridwatch.web.views import ServiceView

DESCRIPTION = """Camera health and the grid incident queue of a Gridwatch node.

Authenticate with the console's session cookie (`POST /api/login`; state-changing requests
also send the `X-CSRF-Token` header) or an API token (`Authorization: Bearer gw_...`).
Answers only show what the user's grid scope covers; anything outside it is a 404.
"""


def create_app(service: ServiceView) -> FastAPI:
    app = FastAPI(title="Gridwatch", version=gridwatch.__version__, description=DESCRIPTION)
    app.state.service = service
    app.state.accounts = service.accounts

    for module in (health, session, cameras, incidents, reports, admin, outbox):
        app.include_router(module.build(service))
    app.include_router(console.build(service))
    # Prometheus scrape route (`gridwatch.web.metrics`): the running service has one, test
    # doubles of the service need not.
    metrics = getattr(service, "metrics", None)
    if metrics is not None:
        app.include_router(metrics.router())

    @app.exception_handler(AccountNotFound)
    def _not_found(_request: Request, exc: AccountNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(AccountConflict)
    def _conflict(_request: Request, exc: AccountConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(OutOfScope)
    def _out_of_scope(_request: Request, exc: OutOfScope) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    return app
