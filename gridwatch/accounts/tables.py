"""Database schema of who may do what, and who did: users, console sessions, API tokens and
the audit log.

The tables share the incident database and its declarative `Base`, so one migration chain
creates them and a transition commits with its audit entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from gridwatch.alerts.store.tables import AutoId, Base


class UserRow(Base):
    """A person or machine account: a role and the grid node it may see (`city`: all)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SessionRow(Base):
    """A console login. Only the SHA-256 of the cookie value is kept, so a database dump
    does not hand out live sessions; the CSRF token is not secret on its own."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_sessions_user_id", "user_id"),
        Index("ix_sessions_expires_at", "expires_at"),
    )


class ApiTokenRow(Base):
    """A machine's bearer token, acting as its user. Stored as SHA-256: tokens are 256
    random bits, so a slow password hash would add nothing but latency to every request."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_api_tokens_user_id", "user_id"),
        UniqueConstraint("user_id", "name", name="uq_api_tokens_user_id_name"),
    )


class AuditRow(Base):
    """One operator or system action: who, when, what, on what, from where, and outcome.

    Failed logins are rows too, which is what the login rate limit counts, so the limit
    holds across restarts and across nodes sharing the database.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_action_actor_at", "action", "actor", "at"),
        Index("ix_audit_log_target_at", "target", "at"),
    )
