"""`/metrics` of the real service (cameras in this process, `workers.count: 0`) on a real
clip: per-camera series, the worker, incidents by kind and status, the optional token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gridwatch.service import Service
from gridwatch.settings import parse_config
from gridwatch.web.api import create_app

pytestmark = pytest.mark.timeout(120)

TOKEN = "metrics-scraper-token-0123456789"
BOAT_ZONE = {
    "id": "water", "polygon": [[0.0, 0.35], [1.0, 0.35], [1.0, 1.0], [0.0, 1.0]],
    "rules": [{"type": "presence", "kind": "illegal_fishing", "classes": ["boat"],
               "min_dwell_s": 1, "end_after_s": 4, "severity": "high"}],
}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def client(footage_dir: Path, models_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("metrics")
    config = parse_config({
        "storage": {"url": f"sqlite:///{data}/gw.db", "evidence_dir": str(data / "evidence")},
        "model": {"dir": str(models_dir)},
        "api": {"metrics_token": TOKEN},
        "workers": {"count": 0},
        "cameras": [{"id": "river", "url": str(footage_dir /
                                               "fishing_boat_sea_640x360_30fps.mp4"),
                     "stream": {"loop": True, "realtime": True}, "zones": [BOAT_ZONE]}],
    })
    service = Service(config)
    service.start()
    try:
        with TestClient(create_app(service)) as test_client:
            yield test_client
    finally:
        service.stop()


def scrape(client: TestClient) -> dict[tuple[str, frozenset], float]:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


def test_metrics_need_the_configured_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"


def test_metrics_show_each_camera_its_worker_and_incidents_by_kind_and_status(
    client: TestClient,
) -> None:
    camera = frozenset({("camera", "river"), ("worker", "0")})
    deadline = time.monotonic() + 60
    while True:
        series = scrape(client)
        incident = series.get(("gridwatch_incidents",
                               frozenset({("kind", "illegal_fishing"), ("status", "new")})))
        analysed = series.get(("gridwatch_camera_frames_analysed_total", camera), 0)
        if (incident and analysed >= 3) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert incident == 1, "the boat's incident, counted by kind and status"
    assert analysed >= 3
    assert series[("gridwatch_camera_frames_decoded_total", camera)] >= analysed
    assert series[("gridwatch_camera_state", camera | {("gridwatch_camera_state", "online")})] == 1
    assert series[("gridwatch_camera_state", camera | {("gridwatch_camera_state", "stalled")})] == 0
    modes = {m: series[("gridwatch_camera_mode", camera | {("gridwatch_camera_mode", m)})]
             for m in ("watch", "active")}
    assert sorted(modes.values()) == [0, 1], modes
    assert 0 <= series[("gridwatch_camera_last_frame_age_seconds", camera)] < 5
    assert ("gridwatch_camera_reconnects_total", camera) in series
    worker = frozenset({("worker", "0")})
    assert series[("gridwatch_worker_up", worker)] == 1
    assert series[("gridwatch_worker_cpu_seconds_total", worker)] > 0
    assert series[("gridwatch_worker_resident_memory_bytes", worker)] > 50e6
    assert series[("gridwatch_worker_restarts_total", worker)] == 0
