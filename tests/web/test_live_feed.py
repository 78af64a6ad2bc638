"""The console's pushed event stream (/api/live/events) over a real HTTP server.

Incidents are committed by the real `IncidentManager` with real evidence (MOT17 frames), and
read back as Server-Sent Events by an HTTP client, as the browser's EventSource reads them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gridwatch.accounts.store import AccountConflict
from gridwatch.web import console
from gridwatch.web.api import session
from gridwatch.web.auth import CSRF_HEADER, SESSION_COOKIE
from tests.support.incidents import event, mot_frame, mot_people
from tests.support.served import EventStream, Served, serve

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)


@pytest.fixture
def served(env: Env) -> Iterator[Served]:
    server = serve(env.app)
    try:
        yield server
    finally:
        server.stop()


def stream_for(env: Env, served: Served, username: str, scope: str,
               last_event_id: str | None = None) -> EventStream:
    """The event stream of an operator scoped to `scope`, logged in like the console."""
    with contextlib.suppress(AccountConflict):
        env.user(username, "operator", scope)
    login = httpx.post(f"{served.base}/api/login",
                       json={"username": username, "password": env.password})
    assert login.status_code == 200, login.text
    headers = {"Cookie": f"{SESSION_COOKIE}={login.cookies[SESSION_COOKIE]}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    stream = EventStream(f"{served.base}/api/live/events", headers)
    assert stream.status == 200
    stream.next("cameras")
    return stream


def open_incident(env: Env, footage_dir, camera: str, t: float = 1.0):
    frame = mot_frame(footage_dir, 1, camera=camera)
    return env.manager.handle(event("start", t, camera=camera, objects={"person": 6},
                                    frame=frame, detections=mot_people(footage_dir, 1),
                                    score=0.9))


def test_event_stream_refuses_a_caller_without_login(env: Env):
    answer = TestClient(env.app).get("/api/live/events")
    assert answer.status_code == 401
    assert "authentication required" in answer.json()["detail"]


def test_operator_hears_own_township_incidents_at_once_and_never_another_townships(
    env: Env, served: Served, footage_dir,
):
    stream = stream_for(env, served, "op-a", "twp-a")
    try:
        committed_at = time.time()
        theirs = open_incident(env, footage_dir, "cam-b1")
        mine = open_incident(env, footage_dir, "cam-a1")
        got = stream.next("incident", timeout=5)
        later = stream.drain(2.5)
    finally:
        stream.close()

    assert got.data["incident"]["id"] == mine.id
    assert got.data["change"] == "opened"
    assert got.data["incident"]["grid_cell"] == "cell-a1"
    assert got.received - committed_at < 2.0
    heard = {e.data["incident"]["id"] for e in later if e.kind == "incident"}
    assert theirs.id not in heard
    cameras = [e.data["cameras"] for e in later if e.kind == "cameras"]
    assert cameras, "camera snapshots come every second"
    assert {c["id"] for c in cameras[-1]} == {"cam-a1", "cam-a2"}


def test_operator_action_is_pushed_to_every_console_of_the_grid(
    env: Env, served: Served, footage_dir,
):
    watcher = stream_for(env, served, "watcher-a", "twp-a")
    try:
        made = open_incident(env, footage_dir, "cam-a2")
        watcher.next("incident", where=lambda e: e.data["incident"]["id"] == made.id)
        env.store.transition(made.id, "acknowledged", "op-a", "crew on the way", made.version)
        changed = watcher.next("incident", where=lambda e: e.data["incident"]["id"] == made.id)
    finally:
        watcher.close()
    assert changed.data["change"] == "changed"
    assert changed.data["incident"]["status"] == "acknowledged"
    assert changed.data["incident"]["version"] == made.version + 1


def test_reconnecting_console_is_replayed_what_it_missed_in_order(
    env: Env, served: Served, footage_dir,
):
    first = stream_for(env, served, "op-city", "metro")
    try:
        seen = open_incident(env, footage_dir, "cam-a1")
        last_id = first.next("incident").id
    finally:
        first.close()
    missed = [open_incident(env, footage_dir, cam) for cam in ("cam-a2", "cam-b1")]

    again = stream_for(env, served, "op-city", "metro", last_event_id=last_id)
    try:
        replayed = [again.next("incident", timeout=3) for _ in missed]
        extra = [e for e in again.drain(1.5) if e.kind == "incident"]
    finally:
        again.close()
    assert [e.data["incident"]["id"] for e in replayed] == [m.id for m in missed]
    assert seen.id not in {e.data["incident"]["id"] for e in extra}


def test_event_id_from_an_earlier_server_run_makes_the_console_reload(
    env: Env, served: Served, footage_dir,
):
    open_incident(env, footage_dir, "cam-a1")
    stream = stream_for(env, served, "op-old", "metro", last_event_id="0badf00d-3")
    try:
        kinds = [e.kind for e in stream.drain(1.5)]
    finally:
        stream.close()
    assert "reset" in kinds


def test_logging_out_ends_the_open_event_stream(env: Env):
    app = FastAPI()
    app.state.accounts = env.accounts
    app.include_router(session.build(env.service))
    app.include_router(console.build(env.service, recheck_s=0.5))
    server = serve(app)
    env.user("op-leaving", "operator", "twp-a")
    try:
        with httpx.Client(base_url=server.base) as client:
            login = client.post("/api/login", json={"username": "op-leaving",
                                                    "password": env.password})
            cookie = {"Cookie": f"{SESSION_COOKIE}={login.cookies[SESSION_COOKIE]}"}
            stream = EventStream(f"{server.base}/api/live/events", cookie)
            stream.next("cameras")
            assert not stream.ended(1.0), "a valid session keeps its stream"
            out = client.post("/api/logout", headers={CSRF_HEADER: login.json()["csrf_token"]})
            assert out.status_code == 204
            assert stream.ended(3.0), "the stream of an ended session is closed"
            stream.close()
            again = client.get("/api/live/events", headers=cookie)
        assert again.status_code == 401
    finally:
        server.stop()
