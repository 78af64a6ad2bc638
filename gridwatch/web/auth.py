"""FastAPI dependencies that authenticate a request and check its role.

A request proves who it is with the console's session cookie or an API token in
`Authorization: Bearer`. Cookie-authenticated requests that change state must also send
the session's CSRF token in `X-CSRF-Token`: the browser attaches the cookie on its own,
a header only the page's script can add. Tokens are never attached by a browser, so bearer
requests need no CSRF token.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, WebSocket, WebSocketException
from fastapi import status as http
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from gridwatch.accounts.store import Accounts, Role, User

log = logging.getLogger(__name__)

SESSION_COOKIE = "gridwatch_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

session_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, scheme_name="session",
    description="Set by POST /api/login. State-changing requests also need the session's "
                f"CSRF token (from the login answer or GET /api/me) in `{CSRF_HEADER}`.",
)
bearer_token = HTTPBearer(
    auto_error=False, scheme_name="token",
    description="An API token (`gw_...`) made by an administrator; acts as its user.",
)


def accounts_of(conn: HTTPConnection) -> Accounts:
    return conn.app.state.accounts


def client_ip(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(http.HTTP_401_UNAUTHORIZED, detail,
                         headers={"WWW-Authenticate": 'Bearer realm="gridwatch"'})


def current_user(
    request: Request,
    cookie: Annotated[str | None, Security(session_cookie)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_token)],
) -> User:
    """The authenticated user, or 401; 403 for a cookie request that changes state without
    the CSRF header. Works for plain HTTP routes, Server-Sent Events included."""
    accounts = accounts_of(request)
    if bearer is not None:
        user = accounts.from_token(bearer.credentials)
        if user is None:
            raise unauthorized("API token is unknown, expired or revoked")
        return user
    if cookie:
        user = accounts.from_session(cookie)
        if user is None:
            raise unauthorized("session expired or ended: log in again")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not user.csrf_token or not hmac.compare_digest(sent, user.csrf_token):
                raise HTTPException(http.HTTP_403_FORBIDDEN,
                                    f"{CSRF_HEADER} header missing or wrong for this session")
        return user
    raise unauthorized("authentication required: log in (POST /api/login) or send "
                       "Authorization: Bearer <API token>")


def require_role(role: Role | str) -> Callable[[User], User]:
    """A dependency returning the current user if their role is `role` or higher, else 403."""
    needed = Role.parse(str(role))

    def dependency(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.has_role(needed):
            raise HTTPException(http.HTTP_403_FORBIDDEN,
                                f"needs role {needed.value} or higher (you are {user.role.value})")
        return user

    dependency.__name__ = f"require_{needed.value}"
    return dependency


def websocket_user(websocket: WebSocket) -> User:
    """The user of a WebSocket (cookie or bearer header), or the handshake is refused
    with close code 1008. A cookie is only accepted from the page's own origin, since a
    handshake carries no CSRF header."""
    accounts = accounts_of(websocket)
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        user = accounts.from_token(credentials.strip())
    else:
        cookie = websocket.cookies.get(SESSION_COOKIE)
        user = accounts.from_session(cookie) if cookie else None
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host")
        if user is not None and origin is not None and origin.split("://", 1)[-1] != host:
            log.warning("refused a WebSocket from origin %s for host %s", origin, host)
            user = None
    if user is None:
        raise WebSocketException(http.WS_1008_POLICY_VIOLATION, "authentication required")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
Operator = Annotated[User, Depends(require_role(Role.OPERATOR))]
Admin = Annotated[User, Depends(require_role(Role.ADMIN))]
WebSocketUser = Annotated[User, Depends(websocket_user)]
