"""pytest fixtures for the real RTSP test server; test modules import the ones they use."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.rtsp import (
    RTSP_PASSWORD,
    RTSP_USER,
    SYSTEM_PYTHON,
    RtspTestServer,
    loop_clip,
)


def _require_gst_rtsp_server() -> None:
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                              "from gi.repository import GstRtspServer"],
        capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.fail("gst-rtsp-server is missing: apt-get install gir1.2-gst-rtsp-server-1.0 "
                    "python3-gi gstreamer1.0-plugins-{base,good,bad,ugly} "
                    f"({probe.stderr.strip()[-300:]})")


@pytest.fixture(scope="session")
def rtsp_clip(footage_dir: Path) -> Path:
    """2 s of the real fishing-boat clip, 30 fps, keyframe every 15 frames, no B-frames."""
    _require_gst_rtsp_server()
    return loop_clip(footage_dir / "fishing_boat_sea_640x360_30fps.mp4", seconds=2.0, gop=15)


@pytest.fixture(scope="module")
def rtsp_server(rtsp_clip: Path) -> Iterator[RtspTestServer]:
    """A server shared by a module's read-only tests: paths `cam` and `cam2`, basic auth."""
    with RtspTestServer({"cam": rtsp_clip, "cam2": rtsp_clip},
                        user=RTSP_USER, password=RTSP_PASSWORD) as server:
        yield server


@pytest.fixture
def make_rtsp_server(rtsp_clip: Path) -> Iterator[Callable[..., RtspTestServer]]:
    """Start private servers (to kill, freeze, restart); all stopped after the test."""
    servers: list[RtspTestServer] = []

    def make(paths: dict[str, Path] | None = None, **kwargs: object) -> RtspTestServer:
        server = RtspTestServer(paths or {"cam": rtsp_clip}, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
