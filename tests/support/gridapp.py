"""A two-township grid, its accounts and the HTTP API over a real incident store.

The API runs with FastAPI's TestClient against `create_app` and a small `ServiceView`
whose camera health has the running service's shape; incidents are real rows made by the
real `IncidentManager` (or seeded with explicit times), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gridwatch.accounts.store import Accounts, Role, User
from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.grid import Grid
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import IncidentStore
from gridwatch.ingest.state import (
    CameraHealth,
    CameraState,
    DecodeMode,
    PreviewInfo,
    StreamCounters,
    WorkerRef,
    ZoneOutline,
)
from gridwatch.settings import parse_config
from gridwatch.web.api import create_app
from gridwatch.web.auth import CSRF_HEADER
from tests.support.grid_data import CAMERAS, PASSWORD, config_data

pytest_plugins = ("tests.support.db",)


def camera_health(camera: str, cell: str | None) -> CameraHealth:
    """The health of a camera that is online, as a running service reports it."""
    return CameraHealth(
        id=camera, name=camera, grid_cell=cell, state=CameraState.ONLINE,
        reason="receiving frames", since=1_749_988_800.0,
        stream=f"rtsp://127.0.0.1:8554/{camera}", keyframes_only=False,
        mode=DecodeMode(configured="adaptive", current="watch"),
        worker=WorkerRef(index=0, pid=None),
        counters=StreamCounters(frames_received=250, frames_decoded=10, analysed=10),
        analysis_cost=None,
        zones=[ZoneOutline(id="walkway", name="Mall walkway",
                           polygon=[(0.05, 0.35), (0.95, 0.35), (0.95, 0.98), (0.05, 0.98)],
                           rules=["crowd"])],
        last_analysis=None, preview=PreviewInfo(), recent_changes=[])


class Clock:
    """A settable clock for the code under test (accounts, escalation)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class FakeService:
    store: IncidentStore
    evidence: EvidenceWriter
    grid: Grid
    accounts: Accounts
    cameras: dict[str, str | None] = field(default_factory=lambda: dict(CAMERAS))

    def camera_health(self) -> list[CameraHealth]:
        return [camera_health(cam, cell) for cam, cell in self.cameras.items()]


def cli_admin() -> User:
    """The whole-city administrator the fixtures act as when they make accounts."""
    return User(0, "fixture", Role.ADMIN, "city", None, "cli")


@dataclass
class Env:
    service: FakeService
    app: Any
    clock: Clock
    manager: IncidentManager
    password: str = PASSWORD

    @property
    def store(self) -> IncidentStore:
        return self.service.store

    @property
    def accounts(self) -> Accounts:
        return self.service.accounts

    def user(self, username: str, role: str, scope: str, password: str | None = PASSWORD) -> None:
        self.accounts.create_user(cli_admin(), username, password, role, scope)

    def token_client(self, username: str, role: str, scope: str) -> TestClient:
        """A client authenticated with a new API token of a new machine account (no
        password: Argon2 costs most of a second on a busy machine)."""
        self.user(username, role, scope, password=None)
        _, secret = self.accounts.create_token(cli_admin(), username, "tests")
        client = TestClient(self.app)
        client.headers["Authorization"] = f"Bearer {secret}"
        return client

    def session_client(self, username: str, password: str = PASSWORD) -> TestClient:
        """A client logged in through POST /api/login, sending its CSRF header."""
        client = TestClient(self.app)
        answer = client.post("/api/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers[CSRF_HEADER] = answer.json()["csrf_token"]
        return client


@pytest.fixture
def env(store: IncidentStore, tmp_path) -> Iterator[Env]:
    config = parse_config(config_data())
    grid = Grid.from_settings(config.grid, CAMERAS)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    accounts = Accounts(store, grid, login_max_failures=5, login_window_s=60, clock=clock)
    evidence = EvidenceWriter(tmp_path / "evidence")
    service = FakeService(store, evidence, grid, accounts)
    manager = IncidentManager(store, evidence, cooldown_s=60, grid_cell_of=CAMERAS.get)
    yield Env(service, create_app(service), clock, manager)

