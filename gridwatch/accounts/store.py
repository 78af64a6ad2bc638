"""Users, console sessions, API tokens and the login rate limit, in the incident database.

Everything lives in the shared database rather than in memory so that a session opened on
one node works on another, a restart logs nobody out, and the login rate limit counts the
failures every node saw. Every change to an account is written with its audit entry in
one transaction.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Unpack

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from gridwatch.accounts.audit import (
    LOGIN_FAILED,
    AuditEntry,
    AuditFilters,
    entries,
    recent_failures,
    record,
)
from gridwatch.accounts.passwords import (
    check_strength,
    hash_password,
    needs_rehash,
    verify_password,
)
from gridwatch.accounts.tables import ApiTokenRow, SessionRow, UserRow
from gridwatch.alerts.incidents.grid import WHOLE_CITY, Grid
from gridwatch.alerts.store.incident_store import IncidentStore
from gridwatch.alerts.store.tables import utcnow

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
TOKEN_PREFIX = "gw_"
# A session's or token's last use is written at most this often, not on every request.
TOUCH_EVERY = timedelta(minutes=1)


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def parse(cls, value: str, field: str = "role") -> Role:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"{field}: {value!r} is not a role (one of {', '.join(r.value for r in cls)})"
            ) from None


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class User:
    """Who is making a request, what they may do and which grid cells they may see.

    `cells` is None for a whole-city scope (everything, incidents of cameras outside the
    grid included). `csrf_token` is set for cookie sessions; state-changing requests made
    with the cookie must echo it in the `X-CSRF-Token` header.
    """

    id: int
    username: str
    role: Role
    scope: str
    cells: frozenset[str] | None
    via: Literal["session", "token", "cli"]
    csrf_token: str | None = None

    def can_see(self, grid_cell: str | None) -> bool:
        return self.cells is None or (grid_cell is not None and grid_cell in self.cells)

    def has_role(self, role: Role | str) -> bool:
        return self.role.rank >= Role(role).rank

    @property
    def can_act(self) -> bool:
        """Operators and admins act on incidents in their scope; viewers only look."""
        return self.has_role(Role.OPERATOR)

    def to_api(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role.value, "scope": self.scope,
                "cells": None if self.cells is None else sorted(self.cells),
                "can_act": self.can_act, "via": self.via, "csrf_token": self.csrf_token}


@dataclass(frozen=True, slots=True)
class Account:
    """A stored user as an administrator sees it (never the password hash)."""

    id: int
    username: str
    role: Role
    scope: str
    disabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: UserRow) -> Account:
        return cls(row.id, row.username, Role(row.role), row.scope, bool(row.disabled),
                   row.created_at, row.updated_at)

    def to_api(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role.value, "scope": self.scope,
                "disabled": self.disabled, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    username: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_api(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return None if v is None else v.isoformat()

        return {"id": self.id, "username": self.username, "name": self.name,
                "prefix": self.prefix, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at), "last_used_at": iso(self.last_used_at),
                "revoked_at": iso(self.revoked_at)}


class LoginFailed(Exception):
    """Wrong username or password, or a disabled account: deliberately not told apart."""


class LoginRateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class AccountNotFound(LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} does not exist")


class AccountConflict(Exception):
    """The change would break an invariant (existing name, last administrator)."""


class OutOfScope(PermissionError):
    """An administrator tried to manage an account or scope beyond their own."""


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Accounts:
    """User management and authentication over the incident store's database.

    `clock` returns the current aware UTC time (tests move it to cross rate-limit windows
    and session expiry without sleeping).
    """

    def __init__(
        self,
        store: IncidentStore,
        grid: Grid,
        *,
        session_hours: float = 12.0,
        login_max_failures: int = 5,
        login_window_s: float = 60.0,
        cookie_secure: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.cookie_secure = cookie_secure
        self.grid = grid
        self.session_ttl = timedelta(hours=session_hours)
        self.login_max_failures = login_max_failures
        self.login_window = timedelta(seconds=login_window_s)
        self.clock = clock

    # --- principals -------------------------------------------------------------------

    def _principal(self, row: UserRow, via: Literal["session", "token"],
                   csrf_token: str | None = None) -> User:
        return User(row.id, row.username, Role(row.role), row.scope,
                    self.grid.visible_cells(row.scope), via, csrf_token)

    # --- bootstrap --------------------------------------------------------------------

    def ensure_admin(self, username: str, password: str | None) -> str | None:
        """Create the first administrator if there is no administrator at all.

        Returns the generated password when none was given (the caller shows it once), or
        None when nothing was created or the given password was used.
        """
        with self.store.writing() as session:
            if session.scalar(select(func.count(UserRow.id))
                              .where(UserRow.role == Role.ADMIN.value)):
                return None
            if session.scalar(select(UserRow.id).where(UserRow.username == username)):
                raise AccountConflict(
                    f"auth.admin_username: {username!r} exists but is not an administrator; "
                    "pick another name or promote it with `gridwatch users`"
                )
            generated = None
            if password is None:
                generated = password = secrets.token_urlsafe(18)
            check_strength(password, "GRIDWATCH_ADMIN_PASSWORD")
            _check_username(username, "auth.admin_username")
            now = self.clock()
            session.add(UserRow(username=username, password_hash=hash_password(password),
                                role=Role.ADMIN.value, scope=WHOLE_CITY, disabled=False,
                                created_at=now, updated_at=now))
            record(session, "system", "user.created", target=username, at=now,
                   details={"role": Role.ADMIN.value, "scope": WHOLE_CITY,
                            "bootstrap": True})
        log.info("created the first administrator %r", username)
        return generated

    # --- login and sessions -----------------------------------------------------------

    def login(self, username: str, password: str, ip: str | None) -> tuple[User, str]:
        """Check the password and open a session; returns the user and the cookie value.

        Refused without checking the password while the (username, address) pair has had
        `login_max_failures` failures within the window, so guessing stays slow even for a
        correct guess.
        """
        now = self.clock()
        with self.store.reading() as session:
            failures, oldest = recent_failures(session, username, ip, now - self.login_window)
            row = session.scalar(select(UserRow).where(UserRow.username == username))
        if failures >= self.login_max_failures and oldest is not None:
            retry = max(1, math.ceil((oldest + self.login_window - now).total_seconds()))
            with self.store.writing() as session:
                record(session, username, "login.rate_limited", ip=ip, at=now,
                       details={"failures": failures, "retry_after_s": retry})
            raise LoginRateLimited(retry)
        ok = verify_password(row.password_hash if row else None, password)
        if not ok or row is None or row.disabled:
            reason = ("unknown user" if row is None else
                      "wrong password" if not ok else "account disabled")
            with self.store.writing() as session:
                record(session, username, LOGIN_FAILED, ip=ip, at=now,
                       details={"reason": reason})
            log.warning("failed login for %r from %s (%s)", username, ip, reason)
            raise LoginFailed("wrong username or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with self.store.writing() as session:
            stored = session.get(UserRow, row.id)
            if stored is None:
                raise LoginFailed("wrong username or password")
            if stored.password_hash and needs_rehash(stored.password_hash):
                stored.password_hash = hash_password(password)
            session.add(SessionRow(id=_sha256(token), user_id=row.id, csrf_token=csrf, ip=ip,
                                   created_at=now, last_seen_at=now,
                                   expires_at=now + self.session_ttl))
            session.execute(delete(SessionRow).where(SessionRow.expires_at <= now))
            record(session, row.username, "login", ip=ip, at=now, target=row.username)
            user = self._principal(stored, "session", csrf)
        return user, token

    def logout(self, token: str, ip: str | None) -> None:
        now = self.clock()
        with self.store.writing() as session:
            found = session.get(SessionRow, _sha256(token))
            if found is None:
                return
            owner = session.get(UserRow, found.user_id)
            session.delete(found)
            record(session, owner.username if owner else "?", "logout", ip=ip, at=now)

    def from_session(self, token: str) -> User | None:
        now = self.clock()
        key = _sha256(token)
        with self.store.reading() as session:
            found = session.execute(
                select(SessionRow, UserRow).join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id == key)
            ).first()
        if found is None:
            return None
        sess, row = found
        if sess.expires_at <= now or row.disabled:
            return None
        if now - sess.last_seen_at >= TOUCH_EVERY:
            self._touch(SessionRow, key, "last_seen_at", now)
        return self._principal(row, "session", sess.csrf_token)

    def from_token(self, token: str) -> User | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        now = self.clock()
        key = _sha256(token)
        with self.store.reading() as session:
            found = session.execute(
                select(ApiTokenRow, UserRow).join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .where(ApiTokenRow.token_hash == key)
            ).first()
        if found is None:
            return None
        tok, row = found
        if (tok.revoked_at is not None or row.disabled
                or (tok.expires_at is not None and tok.expires_at <= now)):
            return None
        if tok.last_used_at is None or now - tok.last_used_at >= TOUCH_EVERY:
            self._touch(ApiTokenRow, tok.id, "last_used_at", now)
        return self._principal(row, "token")

    def _touch(self, model: type[SessionRow | ApiTokenRow], key: str | int, column: str,
               now: datetime) -> None:
        """Record a use; a credential removed meanwhile updates nothing."""
        with self.store.writing() as session:
            session.execute(update(model).where(model.__table__.c.id == key)
                            .values({column: now}))

    # --- user management --------------------------------------------------------------

    def audit_entries(self, **filters: Unpack[AuditFilters]) -> list[AuditEntry]:
        """Audit entries newest first, filtered as `audit.entries` is, read in a transaction
        of their own so that callers need no session of the database."""
        with self.store.reading() as session:
            return entries(session, **filters)

    def list_users(self, actor: User) -> list[Account]:
        with self.store.reading() as session:
            rows = session.scalars(select(UserRow).order_by(UserRow.username)).all()
        return [Account.from_row(r) for r in rows if self._manages(actor, r.scope)]

    def get_user(self, actor: User, username: str) -> Account:
        with self.store.reading() as session:
            row = self._managed_row(session, actor, username)
            return Account.from_row(row)

    def create_user(self, actor: User, username: str, password: str | None, role: str,
                    scope: str, ip: str | None = None) -> Account:
        """A new account; without a password it cannot log in and acts through API tokens
        only (a machine account)."""
        _check_username(username, "username")
        if password is not None:
            check_strength(password)
        parsed_role = Role.parse(role)
        self._check_scope(actor, scope)
        password_hash = None if password is None else hash_password(password)
        now = self.clock()
        with self.store.writing() as session:
            if session.scalar(select(UserRow.id).where(UserRow.username == username)):
                raise AccountConflict(f"username: {username!r} is taken")
            row = UserRow(username=username, password_hash=password_hash,
                          role=parsed_role.value, scope=scope, disabled=False,
                          created_at=now, updated_at=now)
            session.add(row)
            record(session, actor.username, "user.created", target=username, ip=ip, at=now,
                   details={"role": parsed_role.value, "scope": scope,
                            "password": password is not None})
            session.flush()
            return Account.from_row(row)

    def update_user(self, actor: User, username: str, *, role: str | None = None,
                    scope: str | None = None, password: str | None = None,
                    disabled: bool | None = None, ip: str | None = None) -> Account:
        """Change what is given; ends the user's sessions when access is reduced."""
        parsed_role = None if role is None else Role.parse(role)
        if scope is not None:
            self._check_scope(actor, scope)
        if password is not None:
            check_strength(password)
        password_hash = None if password is None else hash_password(password)
        now = self.clock()
        with self.store.writing() as session:
            row = self._managed_row(session, actor, username)
            was_city_admin = self._is_city_admin(row)
            changes: dict[str, Any] = {}
            if parsed_role is not None and parsed_role.value != row.role:
                changes["role"] = [row.role, parsed_role.value]
                row.role = parsed_role.value
            if scope is not None and scope != row.scope:
                changes["scope"] = [row.scope, scope]
                row.scope = scope
            if disabled is not None and disabled != bool(row.disabled):
                changes["disabled"] = [bool(row.disabled), disabled]
                row.disabled = disabled
            if password_hash is not None:
                changes["password"] = "changed"
                row.password_hash = password_hash
            if not changes:
                return Account.from_row(row)
            if was_city_admin and not self._is_city_admin(row):
                self._keep_an_admin(session)
            row.updated_at = now
            if changes.keys() & {"role", "scope", "disabled", "password"}:
                session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
            record(session, actor.username, "user.updated", target=username, ip=ip, at=now,
                   details=changes)
            return Account.from_row(row)

    def _is_city_admin(self, row: UserRow) -> bool:
        return (row.role == Role.ADMIN.value and not row.disabled
                and self.grid.is_whole_city(row.scope))

    def _keep_an_admin(self, session: Session) -> None:
        """Refuse to take away the last enabled whole-city administrator (the change to
        check is flushed first by the query's autoflush)."""
        left = session.scalar(select(func.count(UserRow.id)).where(
            UserRow.role == Role.ADMIN.value, UserRow.disabled.is_(False),
            UserRow.scope.in_([WHOLE_CITY, self.grid.root.id]),
        ))
        if not left:
            raise AccountConflict("this would leave no enabled whole-city administrator")

    def _manages(self, actor: User, scope: str) -> bool:
        """Administrators manage the accounts scoped at or below their own node."""
        if self.grid.is_whole_city(actor.scope):
            return True
        return scope in self.grid and self.grid.contains(actor.scope, scope)

    def _managed_row(self, session: Session, actor: User, username: str) -> UserRow:
        row = session.scalar(select(UserRow).where(UserRow.username == username))
        if row is None or not self._manages(actor, row.scope):
            raise AccountNotFound(f"user {username!r}")
        return row

    def _check_scope(self, actor: User, scope: str) -> None:
        self.grid.node(scope)
        if not self.grid.contains(actor.scope, scope):
            raise OutOfScope(f"scope: {scope!r} is outside your own scope {actor.scope!r}")

    # --- API tokens -------------------------------------------------------------------

    def create_token(self, actor: User, username: str, name: str,
                     expires_days: float | None = None,
                     ip: str | None = None) -> tuple[TokenInfo, str]:
        """A new bearer token acting as `username`; the secret is returned only here."""
        if not name or len(name) > 128:
            raise ValueError("name: 1-128 characters")
        if expires_days is not None and not expires_days > 0:
            raise ValueError("expires_days: must be more than 0")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        expires = None if expires_days is None else now + timedelta(days=expires_days)
        with self.store.writing() as session:
            owner = self._managed_row(session, actor, username)
            if session.scalar(select(ApiTokenRow.id).where(ApiTokenRow.user_id == owner.id,
                                                           ApiTokenRow.name == name)):
                raise AccountConflict(f"name: user {username!r} already has a token {name!r}")
            row = ApiTokenRow(user_id=owner.id, name=name, token_hash=_sha256(secret),
                              prefix=secret[:10], created_at=now, expires_at=expires)
            session.add(row)
            session.flush()
            record(session, actor.username, "token.created", target=username, ip=ip, at=now,
                   details={"token_id": row.id, "name": name, "prefix": row.prefix,
                            "expires_at": None if expires is None else expires.isoformat()})
            return _token_info(row, owner.username), secret

    def list_tokens(self, actor: User) -> list[TokenInfo]:
        with self.store.reading() as session:
            found = session.execute(
                select(ApiTokenRow, UserRow).join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .order_by(ApiTokenRow.id)
            ).all()
        return [_token_info(t, u.username) for t, u in found if self._manages(actor, u.scope)]

    def revoke_token(self, actor: User, token_id: int, ip: str | None = None) -> TokenInfo:
        now = self.clock()
        with self.store.writing() as session:
            found = session.execute(
                select(ApiTokenRow, UserRow).join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .where(ApiTokenRow.id == token_id)
            ).first()
            if found is None or not self._manages(actor, found[1].scope):
                raise AccountNotFound(f"token {token_id}")
            tok, owner = found
            if tok.revoked_at is None:
                tok.revoked_at = now
                record(session, actor.username, "token.revoked", target=owner.username, ip=ip,
                       at=now, details={"token_id": tok.id, "name": tok.name})
            return _token_info(tok, owner.username)


def _token_info(row: ApiTokenRow, username: str) -> TokenInfo:
    return TokenInfo(row.id, username, row.name, row.prefix, row.created_at, row.expires_at,
                     row.last_used_at, row.revoked_at)


def _check_username(username: str, field: str) -> None:
    if not USERNAME.fullmatch(username):
        raise ValueError(f"{field}: 1-64 letters, digits or . _ @ - (got {username!r})")
