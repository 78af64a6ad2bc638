"""API tokens for machines, account management by administrators, and the audit log."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from gridwatch.accounts.tables import ApiTokenRow, AuditRow
from tests.support.grid_data import config_data

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)


def test_token_is_shown_once_stored_hashed_and_acts_as_its_user(env: Env):
    admin = env.token_client("root", "admin", "city")
    env.user("gis", "viewer", "twp-b")

    made = admin.post("/api/tokens", json={"username": "gis", "name": "gis-sync"})

    assert made.status_code == 201
    secret = made.json()["token"]
    assert secret.startswith("gw_") and made.json()["prefix"] == secret[:10]
    with env.store.reading() as session:
        row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.name == "gis-sync")).one()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    listed = admin.get("/api/tokens").json()
    assert all("token" not in t and "token_hash" not in t for t in listed)
    machine = TestClient(env.app, headers={"Authorization": f"Bearer {secret}"})
    me = machine.get("/api/me").json()
    assert (me["username"], me["role"], me["via"], me["csrf_token"]) == (
        "gis", "viewer", "token", None)
    assert machine.get("/api/incidents").status_code == 200


def test_revoked_and_expired_tokens_are_refused(env: Env):
    admin = env.token_client("root", "admin", "city")
    env.user("gis", "operator", "twp-a")
    revoked = admin.post("/api/tokens", json={"username": "gis", "name": "old"}).json()
    short = admin.post("/api/tokens",
                       json={"username": "gis", "name": "short", "expires_days": 1}).json()

    gone = admin.delete(f"/api/tokens/{revoked['id']}")
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    answer = TestClient(env.app).get(
        "/api/me", headers={"Authorization": f"Bearer {revoked['token']}"})
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]

    use_short = {"Authorization": f"Bearer {short['token']}"}
    assert TestClient(env.app).get("/api/me", headers=use_short).status_code == 200
    env.clock.advance(days=1, seconds=1)
    assert TestClient(env.app).get("/api/me", headers=use_short).status_code == 401
    with env.store.reading() as session:
        actions = session.scalars(select(AuditRow.action).where(
            AuditRow.actor == "root").order_by(AuditRow.id)).all()
    assert actions == ["token.created", "token.created", "token.revoked"]


def test_only_admins_manage_accounts_and_read_the_audit_log(env: Env):
    operator = env.token_client("op-a", "operator", "twp-a")
    for method, path in (("get", "/api/users"), ("post", "/api/users"), ("get", "/api/tokens"),
                         ("post", "/api/tokens"), ("get", "/api/audit")):
        answer = getattr(operator, method)(path, **({"json": {}} if method == "post" else {}))
        assert answer.status_code == 403, path
        assert answer.json()["detail"] == "needs role admin or higher (you are operator)"


def test_new_user_is_validated_naming_the_field(env: Env):
    admin = env.token_client("root", "admin", "city")
    good = {"username": "op-new", "password": "long-enough-pw", "role": "operator",
            "scope": "com-a1"}

    cases = {
        "scope": ({**good, "scope": "twp-z"}, "scope: unknown grid node 'twp-z'"),
        "role": ({**good, "role": "boss"}, "role: 'boss' is not a role"),
        "password": ({**good, "password": "short"}, "password: must be at least 10"),
        "username": ({**good, "username": "a b"}, "username: 1-64 letters"),
    }
    for field, (body, message) in cases.items():
        answer = admin.post("/api/users", json=body)
        assert answer.status_code == 422, field
        assert answer.json()["detail"].startswith(message), answer.json()
    assert admin.post("/api/users", json=good).status_code == 201
    again = admin.post("/api/users", json=good)
    assert again.status_code == 409 and "taken" in again.json()["detail"]


def test_township_admin_manages_only_accounts_below_their_township(env: Env):
    env.user("op-b", "operator", "twp-b")
    env.user("op-a", "operator", "cell-a1")
    admin_a = env.token_client("admin-a", "admin", "twp-a")

    assert {u["username"] for u in admin_a.get("/api/users").json()} == {"op-a", "admin-a"}
    assert admin_a.get("/api/users/op-b").status_code == 404
    assert admin_a.patch("/api/users/op-b", json={"role": "viewer"}).status_code == 404
    widen = admin_a.post("/api/users", json={"username": "spy", "password": "long-enough-pw",
                                              "role": "viewer", "scope": "city"})
    assert widen.status_code == 403 and "outside your own scope" in widen.json()["detail"]
    moved = admin_a.patch("/api/users/op-a", json={"scope": "cell-a2"})
    assert moved.status_code == 200 and moved.json()["scope"] == "cell-a2"
    assert admin_a.get("/api/audit").status_code == 403


def test_the_last_whole_city_admin_cannot_be_demoted_or_disabled(env: Env):
    root = env.token_client("root", "admin", "city")
    for change in ({"role": "operator"}, {"disabled": True}, {"scope": "twp-a"}):
        answer = root.patch("/api/users/root", json=change)
        assert answer.status_code == 409, change
        assert "no enabled whole-city administrator" in answer.json()["detail"]
    env.user("root2", "admin", "city")
    assert root.patch("/api/users/root", json={"scope": "twp-a"}).status_code == 200


def test_audit_log_lists_actions_newest_first_and_pages(env: Env):
    root = env.token_client("root", "admin", "city")
    for n in range(3):
        made = root.post("/api/users", json={"username": f"u{n}", "role": "viewer",
                                             "scope": "twp-a"})
        assert made.status_code == 201

    first = root.get("/api/audit", params={"action": "user.created", "limit": 2}).json()
    rest = root.get("/api/audit", params={"action": "user.created", "limit": 2,
                                          "before_id": first["next_before_id"]}).json()

    assert [e["target"] for e in first["items"]] == ["u2", "u1"]
    assert [e["target"] for e in rest["items"]] == ["u0", "root"]
    assert all(e["actor"] == "root" and e["ip"] == "testclient" for e in first["items"])
    assert rest["items"][1]["actor"] == "fixture"
    assert first["items"][0]["details"] == {"role": "viewer", "scope": "twp-a",
                                            "password": False}
    machine = TestClient(env.app).post("/api/login",
                                       json={"username": "u0", "password": "any-password"})
    assert machine.status_code == 401, "an account without password cannot log in"


def test_cli_adds_lists_and_makes_tokens(tmp_path: Path):
    config = tmp_path / "gridwatch.yaml"
    config.write_text(yaml.safe_dump(config_data(storage={"url": f"sqlite:///{tmp_path}/g.db"})))
    base = [sys.executable, "-m", "gridwatch.cli", "--log-level", "WARNING", "users",
            "--config", str(config)]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], input=stdin, capture_output=True, text=True,
                              timeout=60, env={**os.environ})

    added = run("add", "op-a", "--role", "operator", "--scope", "twp-a", "--password-stdin",
                stdin="long-enough-pw\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "created op-a (operator, scope twp-a)"
    bad = run("add", "op-z", "--role", "operator", "--scope", "twp-z", "--password-stdin",
              stdin="long-enough-pw\n")
    assert bad.returncode == 2 and "unknown grid node 'twp-z'" in bad.stderr
    listed = run("list")
    assert listed.stdout.split() == ["op-a", "operator", "twp-a"]
    token = run("token", "op-a", "--name", "gis")
    assert token.returncode == 0 and token.stdout.startswith("gw_")
    assert "shown once" in token.stderr
