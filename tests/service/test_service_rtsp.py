"""The service ingests a camera from a real RTSP server and opens an incident from it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gridwatch.service import Service
from gridwatch.settings import parse_config
from tests.support.rtsp import RTSP_PASSWORD, RtspTestServer

pytest_plugins = ["tests.support.rtsp_fixtures"]


@pytest.mark.rtsp
def test_service_opens_an_incident_from_a_real_rtsp_camera(
    rtsp_server: RtspTestServer, tmp_path: Path,
) -> None:
    config = parse_config({
        "storage": {"url": f"sqlite:///{tmp_path}/gw.db", "evidence_dir": str(tmp_path / "ev")},
        "cameras": [{
            "id": "river-rtsp",
            "url": rtsp_server.url("cam"),
            "grid_cell": "cell-river-01",
            "stream": {"read_timeout_s": 3, "open_timeout_s": 5},
            "zones": [{
                "id": "water",
                "polygon": [[0, 0.3], [1, 0.3], [1, 1], [0, 1]],
                "rules": [{"type": "presence", "kind": "illegal_fishing", "classes": ["boat"],
                           "min_dwell_s": 1, "end_after_s": 3}],
            }],
        }],
    })
    service = Service(config)
    service.start()
    try:
        incidents = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not incidents:
            time.sleep(0.5)
            incidents = service.store.list_incidents(camera="river-rtsp").items
        (health,) = service.camera_health()
        assert health.state == "online", health
        assert health.counters.analysed > 0
        assert RTSP_PASSWORD not in repr(health)
        assert incidents, "no incident from the RTSP camera within 30 s"
        incident = incidents[0]
        assert incident.kind == "illegal_fishing" and incident.zone == "water"
        assert incident.grid_cell == "cell-river-01"
        assert incident.objects.get("boat", 0) >= 1
        assert incident.snapshot and service.evidence.path_of(incident.snapshot).is_file()
    finally:
        service.stop()
