"""A real camera worker, started as the supervisor starts it, loads no web stack and no
database layer: those belong to the main process, and every worker would pay their memory
and import time (and a fork server that preloads them hands them to every worker)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gridwatch.settings import parse_config
from gridwatch.worker.process import plan_shards
from gridwatch.worker.supervisor import Supervisor
from tests.support.rtsp import RtspTestServer
from tests.support.worker_probe import ModuleProbe

pytest_plugins = ["tests.support.rtsp_fixtures"]
pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(120)]

MAIN_PROCESS_ONLY = ("fastapi", "starlette", "uvicorn", "aiortc", "sqlalchemy", "alembic",
                     "argon2")


def test_a_camera_worker_analyses_frames_without_loading_web_or_database_modules(
    rtsp_server: RtspTestServer, models_dir: Path, tmp_path: Path,
) -> None:
    config = parse_config({
        "storage": {"evidence_dir": str(tmp_path / "evidence")},
        "model": {"dir": str(models_dir)},
        "workers": {"count": 1},
        "cameras": [{"id": "pier", "url": rtsp_server.url("cam")}],
    })
    report = tmp_path / "worker-modules.json"
    (spec,) = plan_shards(config, config.model, 1, analysis=ModuleProbe(report))
    received: list[str] = []
    supervisor = Supervisor([spec], lambda _w, _i, m: received.append(type(m).__name__))
    supervisor.start()
    try:
        deadline = time.monotonic() + 60
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert report.exists(), f"the worker analysed no frame within 60 s; heard {received}"
        (status,) = supervisor.statuses()
    finally:
        supervisor.stop()
    loaded = set(json.loads(report.read_text()))
    assert "gridwatch.worker.shard" in loaded and "gridwatch.detectors.pipeline" in loaded
    assert status.alive and status.pid is not None
    leaked = sorted(m for m in loaded if m.split(".")[0] in MAIN_PROCESS_ONLY)
    assert leaked == [], f"the worker loaded main-process modules: {leaked}"
    assert "gridwatch.service" not in loaded and not any(
        m.startswith(("gridwatch.web", "gridwatch.node")) for m in loaded)
