"""Login, logout, who am I, and the part of the grid the user may see."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from gridwatch.accounts.store import LoginFailed, LoginRateLimited
from gridwatch.alerts.incidents.grid import UnknownGridNode
from gridwatch.web.api.schemas import GridTree, Me, UserBody, errors
from gridwatch.web.auth import SESSION_COOKIE, CurrentUser, accounts_of, client_ip


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


def build(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["session"])

    @router.post("/login", response_model=UserBody, responses=errors({
        401: "Wrong username or password", 429: "Too many failures; see Retry-After",
    }))
    def login(body: LoginRequest, request: Request, response: Response) -> dict[str, Any]:
        """Open a console session: sets the HttpOnly, SameSite=Strict session cookie and
        returns the CSRF token to send in `X-CSRF-Token` with state-changing requests."""
        accounts = accounts_of(request)
        try:
            user, token = accounts.login(body.username, body.password, client_ip(request))
        except LoginRateLimited as err:
            raise HTTPException(429, str(err),
                                headers={"Retry-After": str(err.retry_after_s)}) from None
        except LoginFailed as err:
            raise HTTPException(401, str(err)) from None
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(accounts.session_ttl.total_seconds()),
            path="/", httponly=True, samesite="strict", secure=accounts.cookie_secure,
        )
        return user.to_api()

    @router.post("/logout", status_code=204)
    def logout(user: CurrentUser, request: Request, response: Response) -> None:
        """End this session (a token's caller has nothing to end)."""
        token = request.cookies.get(SESSION_COOKIE)
        if user.via == "session" and token:
            accounts_of(request).logout(token, client_ip(request))
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                               secure=accounts_of(request).cookie_secure)

    @router.get("/me", response_model=Me)
    def me(user: CurrentUser) -> dict[str, Any]:
        """The current user, their scope's grid node and the CSRF token of their session."""
        body = user.to_api()
        try:
            body["scope_node"] = service.grid.node(user.scope).to_api()
        except UnknownGridNode:
            body["scope_node"] = None
        return body

    @router.get("/grid", tags=["grid"], response_model=GridTree,
                response_model_exclude_unset=True,
                responses=errors({404: "The user's scope is not in the grid"}))
    def grid(user: CurrentUser) -> dict[str, Any]:
        """The grid tree under the user's scope, with the cameras of each cell."""
        try:
            return service.grid.to_api(user.scope)
        except UnknownGridNode:
            raise HTTPException(404, f"your scope {user.scope!r} is not in the grid; ask an "
                                     "administrator to fix it") from None

    return router
