"""Console login: the session cookie, CSRF, the rate limit, expiry, and their audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.testclient import TestClient
from sqlalchemy import select

from gridwatch.accounts.tables import AuditRow, SessionRow, UserRow
from gridwatch.web.auth import CSRF_HEADER, SESSION_COOKIE

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)


def audit(env: Env, action: str) -> list[AuditRow]:
    with env.store.reading() as session:
        return list(session.scalars(
            select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)))


def login(client: TestClient, username: str, password: str):
    return client.post("/api/login", json={"username": username, "password": password})


def test_login_sets_a_strict_httponly_cookie_and_returns_the_csrf_token(env: Env):
    env.user("op-a", "operator", "twp-a")
    client = TestClient(env.app)

    answer = login(client, "op-a", env.password)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["username"], body["role"], body["scope"]) == ("op-a", "operator", "twp-a")
    assert body["cells"] == ["cell-a1", "cell-a2"] and body["can_act"] is True
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    me = client.get("/api/me").json()
    assert me["username"] == "op-a" and me["csrf_token"] == body["csrf_token"]
    assert me["scope_node"] == {"id": "twp-a", "name": "Township A", "level": "township",
                                "parent": "metro"}
    with env.store.reading() as session:
        stored = session.scalars(select(SessionRow)).one()
        user = session.scalars(select(UserRow).where(UserRow.username == "op-a")).one()
    token = answer.cookies[SESSION_COOKIE]
    assert stored.id != token and token not in stored.id, "only a hash of the cookie is kept"
    assert user.password_hash.startswith("$argon2id$") and env.password not in user.password_hash
    [entry] = audit(env, "login")
    assert (entry.actor, entry.ip) == ("op-a", "testclient")


def test_wrong_password_and_unknown_user_get_the_same_401_and_are_audited(env: Env):
    env.user("op-a", "operator", "twp-a")
    client = TestClient(env.app)

    wrong = login(client, "op-a", "not-the-password")
    unknown = login(client, "nobody", env.password)

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong username or password"}
    assert SESSION_COOKIE not in wrong.cookies
    failed = audit(env, "login.failed")
    assert [(e.actor, e.ip, e.details["reason"]) for e in failed] == [
        ("op-a", "testclient", "wrong password"), ("nobody", "testclient", "unknown user")]


def test_fifth_failure_within_a_minute_locks_the_pair_until_the_window_passes(env: Env):
    env.user("op-a", "operator", "twp-a")
    client = TestClient(env.app)
    for _ in range(5):
        assert login(client, "op-a", "guess-guess-guess").status_code == 401
        env.clock.advance(seconds=5)

    locked = login(client, "op-a", env.password)
    assert locked.status_code == 429
    # The oldest failure was 25 s ago: the window of 60 s frees the pair in 35 s.
    assert locked.headers["retry-after"] == "35"
    assert SESSION_COOKIE not in locked.cookies
    other_user = login(client, "op-b", "guess-guess-guess")
    assert other_user.status_code == 401, "the limit is per username, not per address"
    [limited] = audit(env, "login.rate_limited")
    assert (limited.actor, limited.details["retry_after_s"]) == ("op-a", 35)

    env.clock.advance(seconds=36)
    assert login(client, "op-a", env.password).status_code == 200


def test_cookie_requests_that_change_state_need_the_csrf_header(env: Env, tmp_path):
    env.user("op-a", "operator", "twp-a")
    client = TestClient(env.app)
    csrf = login(client, "op-a", env.password).json()["csrf_token"]

    without = client.post("/api/logout")
    wrong = client.post("/api/logout", headers={CSRF_HEADER: "forged"})
    assert without.status_code == wrong.status_code == 403
    assert client.get("/api/me").status_code == 200, "reads need no CSRF header"

    out = client.post("/api/logout", headers={CSRF_HEADER: csrf})
    assert out.status_code == 204
    assert client.get("/api/me").status_code == 401
    assert [e.actor for e in audit(env, "logout")] == ["op-a"]


def test_session_ends_after_its_lifetime(env: Env):
    env.user("op-a", "operator", "twp-a")
    client = env.session_client("op-a")
    env.clock.advance(hours=11, minutes=59)
    assert client.get("/api/me").status_code == 200

    env.clock.advance(minutes=2)
    answer = client.get("/api/me")
    assert answer.status_code == 401 and "log in again" in answer.json()["detail"]


def test_disabling_a_user_ends_their_session_and_refuses_login(env: Env):
    env.user("op-a", "operator", "twp-a")
    operator = env.session_client("op-a")
    admin = env.token_client("root", "admin", "city")

    changed = admin.patch("/api/users/op-a", json={"disabled": True})

    assert changed.status_code == 200 and changed.json()["disabled"] is True
    assert operator.get("/api/me").status_code == 401
    assert login(TestClient(env.app), "op-a", env.password).status_code == 401
    [entry] = audit(env, "user.updated")
    assert (entry.actor, entry.target, entry.details) == (
        "root", "op-a", {"disabled": [False, True]})
