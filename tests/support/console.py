"""A real Gridwatch service for console tests and the latency benchmark.

The service is the real `Service` (real footage as cameras, the real detector, a SQLite
file) with its HTTP app served by uvicorn on a free port of 127.0.0.1, in a thread of the
test process so that tests can also reach the service's objects. The cameras are not
started with the server: a test subscribes its browser first, then starts them, so the
incidents they raise are seen arriving live.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridwatch.accounts.bootstrap import PASSWORD_ENV
from gridwatch.service import Service
from gridwatch.settings import GridwatchSettings, parse_config
from gridwatch.web.api import create_app
from tests.support.gridapp import PASSWORD, cli_admin
from tests.support.served import Served, serve

ADMIN_PASSWORD = "control-room-2025"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-quic",
]
GRID = {
    "timezone": "Asia/Shanghai",
    "city": {"id": "riverton", "name": "Riverton City", "townships": [
        {"id": "twp-east-bank", "name": "East Bank Township", "communities": [
            {"id": "com-harbour", "name": "Harbour Community", "cells": [
                {"id": "cell-river-01", "name": "River mouth"}]}]},
        {"id": "twp-old-town", "name": "Old Town Township", "communities": [
            {"id": "com-market-square", "name": "Market Square Community", "cells": [
                {"id": "cell-square-02", "name": "Market square"}]}]},
    ]},
}
NO_FISHING = {
    "id": "no-fishing-water", "name": "No-fishing water",
    "polygon": [[0.0, 0.35], [1.0, 0.35], [1.0, 1.0], [0.0, 1.0]],
    "rules": [{"type": "presence", "kind": "illegal_fishing", "classes": ["boat"],
               "min_dwell_s": 2, "end_after_s": 4, "severity": "high"}],
}
HALL = {
    "id": "hall-floor", "name": "Hall floor",
    "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
    "rules": [{"type": "presence", "kind": "crowd", "classes": ["person"], "min_count": 10,
               "min_dwell_s": 3, "severity": "medium"}],
}


def cache_dir() -> Path:
    base = os.environ.get("GRIDWATCH_CACHE_DIR")
    path = (Path(base) if base else Path.home() / ".cache" / "gridwatch") / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


def camera_like_copy(source: Path, gop: int = 30) -> Path:
    """The clip as a camera would send it: H.264 without B-frames, a keyframe a second.

    The shared footage has B-frames, which WebRTC cannot carry; a copy is made once (cached
    by content hash, written atomically) so that the live view can pass it through.
    """
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"{source.stem}-{digest}-nob-g{gop}.mp4"
    if target.is_file():
        return target
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".mp4", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-an", "-c:v", "libx264",
             "-profile:v", "main", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
             "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", str(partial)],
            check=True, capture_output=True, timeout=120)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def console_config(tmp_path: Path, models_dir: Path, cameras: list[dict[str, Any]],
                   **extra: Any) -> GridwatchSettings:
    data = {
        "cameras": cameras,
        "grid": GRID,
        "model": {"name": "yolox_nano_coco_416", "dir": str(models_dir), "conf": 0.3},
        "storage": {"url": f"sqlite:///{tmp_path / 'gridwatch.db'}",
                    "evidence_dir": str(tmp_path / "evidence")},
        "analysis": {"fps": 3},
        **extra,
    }
    return parse_config(data, "console test config")


def boat_camera() -> dict[str, Any]:
    """The boat clip as a looping demo camera (B-frames: the live view re-encodes it)."""
    return {"id": "river-boat", "name": "River mouth", "url": "demo:fishing_boat_sea",
            "grid_cell": "cell-river-01", "zones": [NO_FISHING]}


def passthrough_camera(footage_dir: Path) -> dict[str, Any]:
    """The boat clip without B-frames, looping in real time (the live view passes it on)."""
    clip = camera_like_copy(footage_dir / "fishing_boat_sea_640x360_30fps.mp4")
    return {"id": "river-pier", "name": "River pier", "url": str(clip),
            "grid_cell": "cell-river-01", "stream": {"loop": True, "realtime": True},
            "zones": [NO_FISHING]}


def unreachable_camera() -> dict[str, Any]:
    """An RTSP camera nobody answers for (a closed port on this machine)."""
    return {"id": "gate-cam", "name": "Market gate", "url": "rtsp://127.0.0.1:9/gate",
            "grid_cell": "cell-square-02", "stream": {"open_timeout_s": 2}}


def hall_camera() -> dict[str, Any]:
    return {"id": "hall-crowd", "name": "Market hall", "url": "demo:crowd_hall",
            "grid_cell": "cell-square-02", "zones": [HALL]}


@dataclass
class ConsoleServer:
    service: Service
    served: Served
    started_cameras: bool = False

    @property
    def base(self) -> str:
        return self.served.base

    def add_user(self, username: str, role: str, scope: str) -> None:
        self.service.accounts.create_user(cli_admin(), username, PASSWORD, role, scope)

    def start_cameras(self) -> None:
        if not self.started_cameras:
            self.service.start()
            self.started_cameras = True

    def stop(self) -> None:
        self.served.stop()
        if self.started_cameras:
            self.service.stop()
        else:
            self.service.store.close()


def start_console(config: GridwatchSettings, monkeypatch: Any) -> ConsoleServer:
    """Serve the real service's app; the cameras wait for `start_cameras()`."""
    monkeypatch.setenv(PASSWORD_ENV, ADMIN_PASSWORD)
    service = Service(config).open()
    try:
        served = serve(create_app(service))
    except BaseException:
        service.store.close()
        raise
    return ConsoleServer(service, served)
