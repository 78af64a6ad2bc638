"""The `api:` section: where the HTTP API and console listen."""

from __future__ import annotations

from pydantic import Field

from gridwatch.settings.base import StrictSettings


class ApiSettings(StrictSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    metrics_token: str | None = Field(
        default=None, min_length=16,
        description="When set, GET /metrics needs `Authorization: Bearer <token>`; "
                    "otherwise it is open like /api/health (it shows no credentials)")
