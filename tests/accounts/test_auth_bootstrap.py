"""The first administrator of a fresh database, and WebSocket authentication for the console."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from gridwatch.accounts.bootstrap import PASSWORD_ENV, ensure_admin
from gridwatch.settings import ConfigError
from gridwatch.web.auth import SESSION_COOKIE, WebSocketUser

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)


def test_admin_password_from_the_environment_is_used_and_never_logged(
    env: Env, monkeypatch, caplog,
):
    monkeypatch.setenv(PASSWORD_ENV, "from-the-environment")
    with caplog.at_level(logging.INFO):
        ensure_admin(env.accounts, "admin")

    client = TestClient(env.app)
    answer = client.post("/api/login", json={"username": "admin",
                                             "password": "from-the-environment"})
    assert answer.status_code == 200
    assert (answer.json()["role"], answer.json()["scope"]) == ("admin", "city")
    assert "from-the-environment" not in caplog.text


def test_generated_admin_password_is_logged_once_and_works(env: Env, monkeypatch, caplog):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with caplog.at_level(logging.INFO):
        ensure_admin(env.accounts, "chief")
        ensure_admin(env.accounts, "chief")

    [banner] = [r for r in caplog.records if "generated password" in r.getMessage()]
    password = banner.args[2]
    assert banner.levelno == logging.WARNING and "shown this once" in banner.getMessage()
    assert sum(password in r.getMessage() for r in caplog.records) == 1
    login = TestClient(env.app).post("/api/login",
                                     json={"username": "chief", "password": password})
    assert login.status_code == 200


def test_bootstrap_refuses_a_short_password_or_a_name_held_by_a_non_admin(env: Env,
                                                                         monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "short")
    with pytest.raises(ConfigError) as short:
        ensure_admin(env.accounts, "admin")
    assert short.value.problems == [
        "GRIDWATCH_ADMIN_PASSWORD: must be at least 10 characters"]

    monkeypatch.setenv(PASSWORD_ENV, "from-the-environment")
    env.user("admin", "viewer", "twp-a", password=None)
    with pytest.raises(ConfigError) as taken:
        ensure_admin(env.accounts, "admin")
    assert "auth.admin_username: 'admin' exists but is not an administrator" in str(taken.value)


def websocket_app(env: Env) -> FastAPI:
    """The app with one WebSocket route guarded the way the console's live view is."""
    app = env.app

    @app.websocket("/test-ws")
    async def echo(websocket: WebSocket, user: WebSocketUser) -> None:
        await websocket.accept()
        await websocket.send_json({"username": user.username, "sees_b": user.can_see("cell-b1")})
        await websocket.close()

    return app


def test_websocket_accepts_the_session_cookie_or_a_token_and_refuses_others(env: Env):
    app = websocket_app(env)
    env.user("op-a", "operator", "twp-a")
    logged_in = env.session_client("op-a")
    machine = env.token_client("gis", "viewer", "city")

    with logged_in.websocket_connect("/test-ws") as ws:
        assert ws.receive_json() == {"username": "op-a", "sees_b": False}
    with TestClient(app).websocket_connect(
        "/test-ws", headers={"Authorization": machine.headers["Authorization"]},
    ) as ws:
        assert ws.receive_json() == {"username": "gis", "sees_b": True}

    cookie = logged_in.cookies[SESSION_COOKIE]
    for headers in ({}, {"Authorization": "Bearer gw_forged"},
                    {"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": "http://evil.example"}):
        with pytest.raises(WebSocketDisconnect) as refused, \
                TestClient(app).websocket_connect("/test-ws", headers=headers):
            pass
        assert refused.value.code == 1008, headers
