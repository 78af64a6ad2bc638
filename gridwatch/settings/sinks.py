"""The `sinks:` list: outside systems incidents are delivered to.

Kept apart from the sink modules so that reading a configuration needs neither paho-mqtt
nor redis. Secrets are never written in the file: a sink names the environment variable
that holds its secret, and a missing variable is a configuration error naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from gridwatch.settings.base import StrictSettings

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# MQTT topic levels are separated by "/"; "+" and "#" are subscription wildcards.
TOPIC_PREFIX_PATTERN = r"^[^+#\x00]+$"


def read_secret(env: str) -> str:
    """The secret held by environment variable `env` (validated present at config load)."""
    value = os.environ.get(env, "")
    if not value:
        raise ValueError(f"environment variable {env} is not set or empty")
    return value


class _SinkCommonSettings(StrictSettings):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                      description="Unique; delivery records are kept per sink name")
    timeout_s: float = Field(default=5.0, gt=0, le=120,
                             description="Longest wait for the receiver to acknowledge")


def _require_env(field: str, env: str | None, what: str) -> None:
    if env is not None and not os.environ.get(env):
        raise ValueError(f"{field}: environment variable {env} ({what}) is not set or empty")


class WebhookSinkSettings(_SinkCommonSettings):
    """HTTP POST of the JSON body, signed with HMAC-SHA256 (see docs/sinks.md)."""

    type: Literal["webhook"]
    url: str = Field(description="http:// or https:// address the body is POSTed to")
    secret_env: str = Field(pattern=ENV_PATTERN,
                            description="Environment variable holding the HMAC secret")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not hold a user or password (the body is signed instead)")
        return v

    @model_validator(mode="after")
    def _secret_present(self) -> WebhookSinkSettings:
        _require_env("secret_env", self.secret_env, "the webhook's HMAC secret")
        return self


class MqttSinkSettings(_SinkCommonSettings):
    """Publish to `<topic_prefix>/<grid cell>/<kind>/<topic>` and wait for the broker's ack."""

    type: Literal["mqtt"]
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=ENV_PATTERN)
    tls: bool = False
    ca_file: Path | None = Field(default=None, description="CA bundle for tls (default: system)")
    topic_prefix: str = Field(default="gridwatch", min_length=1, pattern=TOPIC_PREFIX_PATTERN)
    qos: Literal[1, 2] = 1
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    client_id: str | None = Field(default=None, max_length=64,
                                  description="Default: gridwatch-<sink name>-<random>")

    @model_validator(mode="after")
    def _password_present(self) -> MqttSinkSettings:
        _require_env("password_env", self.password_env, "the MQTT password")
        if self.password_env and not self.username:
            raise ValueError("username: required when password_env is set")
        return self


class RedisStreamsSinkSettings(_SinkCommonSettings):
    """XADD to a stream, once per idempotency key (see docs/sinks.md for consumer groups)."""

    type: Literal["redis_streams"]
    url: str = Field(default="redis://127.0.0.1:6379/0",
                     description="redis:// or rediss:// address, without a password")
    password_env: str | None = Field(default=None, pattern=ENV_PATTERN)
    stream: str = Field(default="gridwatch:incidents", min_length=1, max_length=200)
    maxlen: int | None = Field(default=100_000, ge=1,
                               description="Approximate length the stream is trimmed to")
    dedupe_ttl_s: int = Field(default=7 * 86400, ge=60,
                              description="How long a delivered key is remembered")

    @field_validator("url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be a redis:// or rediss:// URL with a host")
        if parts.password:
            raise ValueError("must not hold a password; name its variable in password_env")
        return v

    @model_validator(mode="after")
    def _password_present(self) -> RedisStreamsSinkSettings:
        _require_env("password_env", self.password_env, "the Redis password")
        return self


SinkSettings = Annotated[
    WebhookSinkSettings | MqttSinkSettings | RedisStreamsSinkSettings, Field(discriminator="type"),
]
