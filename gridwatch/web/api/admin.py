"""Accounts and the audit log, for administrators.

An administrator manages the users scoped at or below their own grid node; the audit log,
which spans every grid, is for whole-city administrators only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from gridwatch.alerts.incidents.grid import UnknownGridNode
from gridwatch.web.api.schemas import (
    AccountBody,
    AuditPage,
    CreatedToken,
    TokenBody,
    errors,
)
from gridwatch.web.auth import Admin, accounts_of, client_ip


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str | None = Field(default=None, max_length=256,
                                 description="Omit for a machine account (API tokens only)")
    role: str = Field(description="viewer, operator or admin")
    scope: str = Field(description="`city`, or the id of a township, community or cell")


class UserChange(BaseModel):
    role: str | None = None
    scope: str | None = None
    password: str | None = Field(default=None, max_length=256)
    disabled: bool | None = None


class NewToken(BaseModel):
    username: str = Field(min_length=1, max_length=64, description="The user it acts as")
    name: str = Field(min_length=1, max_length=128, description="What uses it, e.g. 'gis-sync'")
    expires_days: float | None = Field(default=None, gt=0)


def _invalid(err: ValueError) -> HTTPException:
    if isinstance(err, UnknownGridNode):
        return HTTPException(422, f"scope: {err}")
    return HTTPException(422, str(err))


def build(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["admin"])
    refused = errors({403: "Outside your scope, or not an administrator",
                      404: "No such user or token", 409: "Conflicts with an existing one"})

    @router.get("/users", response_model=list[AccountBody])
    def users(admin: Admin, request: Request) -> list[dict[str, Any]]:
        return [a.to_api() for a in accounts_of(request).list_users(admin)]

    @router.post("/users", status_code=201, response_model=AccountBody, responses=refused)
    def create_user(body: NewUser, admin: Admin, request: Request) -> dict[str, Any]:
        try:
            created = accounts_of(request).create_user(
                admin, body.username, body.password, body.role, body.scope, client_ip(request),
            )
        except ValueError as err:
            raise _invalid(err) from None
        return created.to_api()

    @router.get("/users/{username}", response_model=AccountBody, responses=refused)
    def user(username: str, admin: Admin, request: Request) -> dict[str, Any]:
        return accounts_of(request).get_user(admin, username).to_api()

    @router.patch("/users/{username}", response_model=AccountBody, responses=refused)
    def update_user(username: str, body: UserChange, admin: Admin,
                    request: Request) -> dict[str, Any]:
        """Change role, scope, password or disabled; the user's sessions end with it."""
        try:
            changed = accounts_of(request).update_user(
                admin, username, role=body.role, scope=body.scope, password=body.password,
                disabled=body.disabled, ip=client_ip(request),
            )
        except ValueError as err:
            raise _invalid(err) from None
        return changed.to_api()

    @router.get("/tokens", response_model=list[TokenBody])
    def tokens(admin: Admin, request: Request) -> list[dict[str, Any]]:
        return [t.to_api() for t in accounts_of(request).list_tokens(admin)]

    @router.post("/tokens", status_code=201, response_model=CreatedToken, responses=refused)
    def create_token(body: NewToken, admin: Admin, request: Request) -> dict[str, Any]:
        """A bearer token acting as `username`; `token` is shown in this answer only."""
        try:
            info, secret = accounts_of(request).create_token(
                admin, body.username, body.name, body.expires_days, client_ip(request),
            )
        except ValueError as err:
            raise _invalid(err) from None
        return {**info.to_api(), "token": secret}

    @router.delete("/tokens/{token_id}", response_model=TokenBody, responses=refused)
    def revoke_token(token_id: int, admin: Admin, request: Request) -> dict[str, Any]:
        return accounts_of(request).revoke_token(admin, token_id, client_ip(request)).to_api()

    @router.get("/audit", response_model=AuditPage,
                responses=errors({403: "The audit log is for whole-city administrators"}))
    def audit_log(
        admin: Admin,
        request: Request,
        actor: str | None = None,
        action: Annotated[list[str] | None, Query()] = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: Annotated[int | None, Query(description="Continue after this id")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Audit entries newest first; pass the last id as `before_id` for the next page."""
        if not service.grid.is_whole_city(admin.scope):
            raise HTTPException(403, "the audit log spans every grid: whole-city admins only")
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise HTTPException(422, f"{name}: give a time zone (e.g. ...Z or +08:00)")
        found = accounts_of(request).audit_entries(
            actor=actor, actions=action, target=target, since=since, until=until,
            before_id=before_id, limit=limit,
        )
        return {"items": [e.to_api() for e in found],
                "next_before_id": found[-1].id if len(found) == limit else None}

    return router
