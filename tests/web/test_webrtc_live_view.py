"""The live view's WebRTC side, with an aiortc peer playing the browser.

The video comes from the real service's worker process, which holds the camera; this process
opens no camera. Real footage throughout: the boat clip as shared (with B-frames) and a
camera-like copy of it (no B-frames), and a real RTSP server. Passthrough is proved by the
pictures themselves: every picture the peer decodes is bit-identical to a picture of the
camera's own stream, which a re-encode would never give.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gridwatch.service import Service
from gridwatch.web.webrtc import CameraSource, LiveViewError, LiveViews, camera_source
from tests.support.console import (
    NO_FISHING,
    boat_camera,
    camera_like_copy,
    console_config,
    passthrough_camera,
)
from tests.support.rtsp import QUICK_STREAM, RtspTestServer

pytest_plugins = ("tests.support.rtsp_fixtures",)

BOAT = "fishing_boat_sea_640x360_30fps.mp4"


@pytest.fixture(scope="module")
def camera_clip(footage_dir: Path) -> Path:
    return camera_like_copy(footage_dir / BOAT)


@pytest.fixture(scope="module")
def service(footage_dir: Path, models_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The real service, its two cameras in one worker process."""
    config = console_config(tmp_path_factory.mktemp("live"), models_dir,
                            [passthrough_camera(footage_dir), boat_camera()],
                            workers={"count": 1})
    running = Service(config)
    running.start()
    try:
        wait_for(lambda: all(h.state.value == "online" for h in running.camera_health()), 60,
                 "the cameras to stream in their worker")
        yield running
    finally:
        running.stop()


def source(service: Service, camera_id: str) -> CameraSource:
    status = service.camera(camera_id)
    assert status is not None
    return camera_source(status.camera, status)


def luma_digest(frame: av.VideoFrame) -> str:
    plane = frame.to_ndarray(format="yuv420p")[: frame.height]
    return hashlib.sha256(np.ascontiguousarray(plane).tobytes()).hexdigest()


def clip_digests(path: Path) -> set[str]:
    with av.open(str(path)) as container:
        return {luma_digest(f) for f in container.decode(video=0)}


class Viewer:
    """A receive-only peer with the console's data channel, like the page makes."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("detections")
        self.messages: list[str] = []
        self.channel.on("message", self.messages.append)
        self.track: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pc.on("track", lambda track: self.track.set_result(track))

    async def call(self, views: LiveViews, camera: CameraSource) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await views.answer(camera, self.pc.localDescription, owner="tester")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return answer

    async def frames(self, count: int, timeout: float = 30.0) -> list[av.VideoFrame]:
        track = await asyncio.wait_for(self.track, timeout)
        out: list[av.VideoFrame] = []

        async def collect() -> None:
            while len(out) < count:
                out.append(await track.recv())

        await asyncio.wait_for(collect(), timeout)
        return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def established_clients(port: int) -> int:
    """TCP connections accepted on `port` of this machine and still open (/proc/net/tcp:
    the server's side of each has `port` as its local port, state 01)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01":
            count += 1
    return count


def test_camera_h264_without_b_frames_reaches_the_viewer_bit_exact(service: Service,
                                                                   camera_clip: Path):
    async def scenario() -> tuple[dict[str, Any], list[av.VideoFrame], list[dict[str, Any]]]:
        views = LiveViews(service)
        viewer = Viewer()
        try:
            answer = await viewer.call(views, source(service, "river-pier"))
            frames = await viewer.frames(45)
            return answer, frames, views.stats()
        finally:
            await viewer.pc.close()
            await views.close_all()

    answer, frames, stats = run(scenario())
    assert answer["mode"] == "passthrough" and answer["codec"] == "H264"
    assert answer["reason"] is None
    assert answer["source"] == {"codec": "h264", "profile": "Main", "width": 640, "height": 360,
                                "b_frames": False}
    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    original = clip_digests(camera_clip)
    assert all(luma_digest(f) in original for f in frames), "a picture was re-encoded"
    [stream] = stats
    assert stream["mode"] == "passthrough" and stream["frames"] == 0
    assert stream["packets"] >= 45


def test_stream_with_b_frames_is_decoded_here_and_reencoded_and_says_why(service: Service):
    async def scenario() -> tuple[dict[str, Any], list[av.VideoFrame], list[dict[str, Any]]]:
        views = LiveViews(service)
        viewer = Viewer()
        try:
            answer = await viewer.call(views, source(service, "river-boat"))
            frames = await viewer.frames(20)
            return answer, frames, views.stats()
        finally:
            await viewer.pc.close()
            await views.close_all()

    answer, frames, stats = run(scenario())
    assert answer["mode"] == "transcode"
    assert answer["reason"] == "the stream has B-frames, which WebRTC cannot carry"
    assert answer["source"]["b_frames"] is True
    assert answer["codec"] == "H264", "H.264 stays preferred when aiortc has to encode"
    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    [stream] = stats
    assert stream["mode"] == "transcode" and stream["packets"] == 0 and stream["frames"] >= 20


def test_detections_travel_beside_the_video_with_frame_time_and_size(service: Service):
    async def scenario() -> list[dict[str, Any]]:
        views = LiveViews(service)
        viewer = Viewer()
        try:
            await viewer.call(views, source(service, "river-pier"))
            await viewer.frames(10)
            for _ in range(400):
                results = [m for m in viewer.messages if '"type": "detections"' in m]
                if len(results) >= 5 and any('"cls": "boat"' in m for m in results):
                    break
                await asyncio.sleep(0.1)
            return [json.loads(m) for m in viewer.messages]
        finally:
            await viewer.pc.close()
            await views.close_all()

    messages = run(scenario())
    info = messages[0]
    assert info["type"] == "info" and info["mode"] == "passthrough"
    assert info["zones"][0]["polygon"] == NO_FISHING["polygon"]
    results = [m for m in messages if m["type"] == "detections"]
    assert len(results) >= 5
    assert all(m["width"] == 640 and m["height"] == 360 for m in results)
    times = [m["t"] for m in results]
    assert times == sorted(times) and len(set(times)) == len(times)
    boats = [d for m in results for d in m["detections"] if d["cls"] == "boat"]
    assert boats, "the boat of the clip is detected and sent"
    x1, y1, x2, y2 = boats[0]["box"]
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360


def test_last_viewer_leaving_stops_the_stream_from_the_worker(service: Service):
    async def scenario() -> tuple[int, int, list[dict[str, Any]], bool]:
        views = LiveViews(service)
        first, second = Viewer(), Viewer()
        camera = source(service, "river-pier")
        one = await first.call(views, camera)
        two = await second.call(views, camera)
        await first.frames(5)
        await second.frames(5)
        shared = views.stats()
        await views.close(one["session"])
        track = await second.track
        await second.frames(5)
        still = views.stats()[0]["viewers"]
        await views.close(two["session"])
        ended = False
        deadline = asyncio.get_running_loop().time() + 10
        while not ended and asyncio.get_running_loop().time() < deadline:
            try:
                await asyncio.wait_for(track.recv(), 2)
            except (MediaStreamError, TimeoutError):
                ended = True
        for viewer in (first, second):
            await viewer.pc.close()
        return len(shared), still, views.stats(), ended

    streams, viewers_after_one_left, after, ended = run(scenario())
    assert streams == 1, "two viewers of a camera share one stream from its worker"
    assert viewers_after_one_left == 1
    assert after == [] and ended


def test_offer_without_video_is_refused_with_the_reason(service: Service):
    async def scenario() -> LiveViewError:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.createDataChannel("detections")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            await LiveViews(service).answer(source(service, "river-pier"),
                                            pc.localDescription)
        except LiveViewError as err:
            return err
        finally:
            await pc.close()
        raise AssertionError("an offer without video was answered")

    err = run(scenario())
    assert err.status == 422 and "no video section" in str(err)


@pytest.fixture
def rtsp_service(request: pytest.FixtureRequest, make_rtsp_server: Any, models_dir: Path,
                 tmp_path: Path) -> Iterator[tuple[Service, RtspTestServer]]:
    """A private RTSP camera (no other client) watched by the service's worker process;
    the test's `workers` marker adds worker settings."""
    server = make_rtsp_server()
    marker = request.node.get_closest_marker("workers")
    workers = {"count": 1, **(marker.kwargs if marker else {})}
    config = console_config(tmp_path, models_dir, [
        {"id": "rtsp-cam", "url": server.url("cam"), "grid_cell": "cell-river-01",
         "stream": QUICK_STREAM}], workers=workers)
    running = Service(config)
    running.start()
    try:
        yield running, server
    finally:
        running.stop()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.rtsp
def test_rtsp_camera_is_passed_through_bit_exact_over_the_workers_one_connection(
        rtsp_service: tuple[Service, RtspTestServer], rtsp_clip: Path):
    """The production case: the RTSP camera's only client is its worker, and the browser
    sees that connection's packets, bit-exact."""
    service, server = rtsp_service
    wait_for(lambda: service.camera_health()[0].state.value == "online", 30, "the worker")
    assert established_clients(server.port) == 1, "the worker holds one connection"

    async def scenario() -> tuple[dict[str, Any], list[av.VideoFrame], list[dict[str, Any]],
                                  int]:
        views = LiveViews(service)
        viewer = Viewer()
        try:
            answer = await viewer.call(views, source(service, "rtsp-cam"))
            frames = await viewer.frames(30)
            clients = established_clients(server.port)
            return answer, frames, views.stats(), clients
        finally:
            await viewer.pc.close()
            await views.close_all()

    answer, frames, stats, clients_while_watched = run(scenario())
    assert answer["mode"] == "passthrough" and answer["codec"] == "H264"
    original = clip_digests(rtsp_clip)
    assert all(luma_digest(f) in original for f in frames), "a picture was re-encoded"
    assert stats[0]["frames"] == 0 and stats[0]["packets"] >= 30
    assert clients_while_watched == 1, "the live view opened no second camera connection"


@pytest.mark.rtsp
@pytest.mark.workers(restart_backoff_initial_s=30, restart_backoff_max_s=30)
def test_live_view_of_a_camera_whose_worker_is_down_says_so(
        rtsp_service: tuple[Service, RtspTestServer]):
    service, _server = rtsp_service
    wait_for(lambda: service.camera_health()[0].state.value == "online", 30, "the worker")
    [worker] = service.worker_statuses()
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: service.worker_statuses()[0].down_reason is not None, 10,
             "the worker's death")

    async def scenario() -> LiveViewError:
        viewer = Viewer()
        try:
            await viewer.call(LiveViews(service), source(service, "rtsp-cam"))
        except LiveViewError as err:
            return err
        finally:
            await viewer.pc.close()
        raise AssertionError("a camera whose worker is down was answered")

    err = run(scenario())
    assert err.status == 503
    assert "camera rtsp-cam: its worker 0 is not running" in str(err)
    assert "SIGKILL" in str(err)
