"""Who may use the API and the console: users, sessions, API tokens, roles and scopes.

Other modules use the dependencies: `current_user` (any authenticated user),
`require_role("operator")`, `websocket_user`, and the `User` they return, whose
`can_see(grid_cell)` tells whether an incident or camera is in the user's scope.
"""

from gridwatch.auth.accounts import Accounts, Role, User
from gridwatch.auth.deps import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Admin,
    CurrentUser,
    Operator,
    WebSocketUser,
    current_user,
    require_role,
    websocket_user,
)

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Accounts",
    "Admin",
    "CurrentUser",
    "Operator",
    "Role",
    "User",
    "WebSocketUser",
    "current_user",
    "require_role",
    "websocket_user",
]
