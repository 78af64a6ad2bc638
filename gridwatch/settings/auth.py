"""The `auth:` section: console logins and the first administrator."""

from __future__ import annotations

from pydantic import Field

from gridwatch.settings.base import StrictSettings


class AuthSettings(StrictSettings):
    """Console logins and the first administrator (its password comes from the
    environment, GRIDWATCH_ADMIN_PASSWORD, or is generated and logged once)."""

    admin_username: str = Field(default="admin", min_length=1, max_length=64)
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30,
                                 description="A console session ends this long after login")
    cookie_secure: bool = Field(default=False,
                                description="Send the session cookie over HTTPS only")
    login_max_failures: int = Field(default=5, ge=1,
                                    description="Failed logins per username and address ...")
    login_window_s: float = Field(default=60.0, gt=0, description="... within this window")
