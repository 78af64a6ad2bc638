"""The gst-rtsp-server test server itself: looping, paths, transports, auth, shutdown."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from tests.support.rtsp import RtspTestServer, loop_clip, read_frames

pytest_plugins = ["tests.support.rtsp_fixtures"]
pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(60)]

MakeServer = Callable[..., RtspTestServer]
CLIP_FRAMES = 60  # rtsp_clip: 2 s at 30 fps


def _decode(url: str, count: int, transport: str = "tcp") -> list[av.VideoFrame]:
    frames = []
    with av.open(url, options={"rtsp_transport": transport}, timeout=(3, 3)) as container:
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) >= count:
                break
    return frames


def test_served_clip_loops_forever_with_growing_timestamps(
    rtsp_server: RtspTestServer,
) -> None:
    frames = _decode(rtsp_server.url("cam"), CLIP_FRAMES + 40)
    times = [f.time for f in frames if f.time is not None]
    assert len(frames) == CLIP_FRAMES + 40
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[-1] - times[0] > 3.0
    assert frames[0].key_frame


def test_late_udp_client_joins_a_running_tcp_session(rtsp_server: RtspTestServer) -> None:
    early: list[int] = []
    reader = threading.Thread(
        target=lambda: early.append(read_frames(rtsp_server.url("cam2"), 75)))
    reader.start()
    time.sleep(1.0)
    late = _decode(rtsp_server.url("cam2"), 20, transport="udp")
    reader.join(10)
    assert early == [75]
    assert len(late) == 20
    assert late[0].key_frame, "a joining client must start at a keyframe (SPS/PPS repeated)"


def test_each_path_serves_its_own_clip(
    make_rtsp_server: MakeServer, rtsp_clip: Path, footage_dir: Path,
) -> None:
    road = loop_clip(footage_dir / "cctv_road_cart_320x240_3fps.mp4", seconds=None, gop=3)
    server = make_rtsp_server({"sea": rtsp_clip, "road": road})
    sea_frame = _decode(server.url("sea"), 1)[0]
    road_frame = _decode(server.url("road"), 1)[0]
    assert (sea_frame.width, sea_frame.height) == (640, 360)
    assert (road_frame.width, road_frame.height) == (320, 240)


def test_wrong_or_missing_password_gets_401_and_unknown_path_404(
    rtsp_server: RtspTestServer,
) -> None:
    with pytest.raises(av.error.HTTPUnauthorizedError):
        read_frames(rtsp_server.url("cam", password="wrong"))
    with pytest.raises(av.error.HTTPUnauthorizedError):
        read_frames(rtsp_server.url("cam", with_auth=False))
    with pytest.raises(av.error.HTTPNotFoundError):
        read_frames(rtsp_server.url("nope"))


def test_sigterm_stops_the_server_cleanly_and_frees_the_port(make_rtsp_server: MakeServer) -> None:
    server = make_rtsp_server()
    port = server.port
    assert read_frames(server.url("cam"), 5) == 5
    assert server.stop() == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_restart_keeps_the_port(make_rtsp_server: MakeServer) -> None:
    server = make_rtsp_server()
    port = server.port
    server.restart()
    assert server.port == port
    assert read_frames(server.url("cam"), 3) == 3
