"""The README's run command on the embedded default: real clips as cameras, real incidents."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import die_with_parent

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "first-run-admin-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_default_service_shows_online_cameras_and_a_boat_incident_within_a_minute(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridwatch.cli", "serve", "--port", str(port)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        env={**os.environ, "GRIDWATCH_OFFLINE": "1", "GRIDWATCH_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=5)
    cameras: list[dict] = []
    boat: list[dict] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            try:
                if "gridwatch_session" not in client.cookies:
                    client.post("/api/login", json={"username": "admin",
                                                    "password": ADMIN_PASSWORD})
                cameras = client.get("/api/cameras").json()
                incidents = client.get("/api/incidents",
                                       params={"camera": "river-boat"}).json()["items"]
            except (httpx.HTTPError, KeyError):
                continue
            boat = [i for i in incidents if i["kind"] == "illegal_fishing"]
            if cameras and all(c["state"] == "online" for c in cameras) and boat:
                break
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        assert {c["id"] for c in cameras} == {"river-boat", "hall-crowd", "indoor-walk",
                                              "road-cart"}
        assert all(c["state"] == "online" for c in cameras), cameras
        assert boat, "no illegal_fishing incident from the boat clip within 60 s"
        snap = client.get(f"/api/incidents/{boat[0]['id']}/snapshot")
        assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
        assert (tmp_path / "var" / "gridwatch.db").is_file()
        assert httpx.get(f"{base}/openapi.json", timeout=5).json()["info"]["title"] == "Gridwatch"
    finally:
        client.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
