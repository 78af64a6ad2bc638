"""The live view's WebRTC side, with an aiortc peer playing the browser.

Real footage throughout: the boat clip as shared (with B-frames) and a camera-like copy of it
(no B-frames). Passthrough is proved by the pictures themselves: every picture the peer
decodes is bit-identical to a picture of the camera's own stream, which a re-encode would
never give.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gridwatch.service import Service
from gridwatch.settings.stream import StreamSettings
from gridwatch.web.webrtc import CameraSource, LiveViewError, LiveViews
from tests.support.console import (
    NO_FISHING,
    camera_like_copy,
    console_config,
    passthrough_camera,
)

pytest_plugins = ("tests.support.rtsp_fixtures",)

BOAT = "fishing_boat_sea_640x360_30fps.mp4"
LOOP = StreamSettings(loop=True, realtime=True)


@pytest.fixture(scope="module")
def camera_clip(footage_dir: Path) -> Path:
    return camera_like_copy(footage_dir / BOAT)


def luma_digest(frame: av.VideoFrame) -> str:
    plane = frame.to_ndarray(format="yuv420p")[: frame.height]
    return hashlib.sha256(np.ascontiguousarray(plane).tobytes()).hexdigest()


def clip_digests(path: Path) -> set[str]:
    with av.open(str(path)) as container:
        return {luma_digest(f) for f in container.decode(video=0)}


def source(camera_id: str, url: Path, pipeline: Any = None) -> CameraSource:
    zones = [{"id": NO_FISHING["id"], "name": NO_FISHING["name"],
              "polygon": NO_FISHING["polygon"]}]
    return CameraSource(camera_id, str(url), LOOP, "cell-river-01", zones, pipeline)


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

    async def frames(self, count: int, timeout: float = 20.0) -> list[av.VideoFrame]:
        track = await asyncio.wait_for(self.track, timeout)
        out: list[av.VideoFrame] = []

        async def collect() -> None:
            while len(out) < count:
                out.append(await track.recv())

        await asyncio.wait_for(collect(), timeout)
        return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_camera_h264_without_b_frames_reaches_the_viewer_bit_exact(camera_clip: Path):
    async def scenario() -> tuple[dict[str, Any], list[av.VideoFrame], list[dict[str, Any]]]:
        views = LiveViews()
        viewer = Viewer()
        try:
            answer = await viewer.call(views, source("river-pier", camera_clip))
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
    [reader] = stats
    assert reader["mode"] == "passthrough" and reader["frames"] == 0
    assert reader["packets"] >= 45


def test_stream_with_b_frames_is_reencoded_and_says_why(footage_dir: Path):
    clip = footage_dir / BOAT

    async def scenario() -> tuple[dict[str, Any], list[av.VideoFrame], list[dict[str, Any]]]:
        views = LiveViews()
        viewer = Viewer()
        try:
            answer = await viewer.call(views, source("river-boat", clip))
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
    [reader] = stats
    assert reader["mode"] == "transcode" and reader["packets"] == 0 and reader["frames"] >= 20


@pytest.fixture
def boat_pipeline(footage_dir: Path, models_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """The camera's real analysis (ingest, detector, rules) in the real service."""
    service = Service(console_config(tmp_path, models_dir, [passthrough_camera(footage_dir)]))
    service.start()
    try:
        yield service.camera("river-pier")
    finally:
        service.stop()


def test_detections_travel_beside_the_video_with_frame_time_and_size(boat_pipeline: Any,
                                                                       camera_clip: Path):
    async def scenario() -> list[dict[str, Any]]:
        views = LiveViews()
        viewer = Viewer()
        try:
            await viewer.call(views, source("river-pier", camera_clip, boat_pipeline))
            await viewer.frames(10)
            for _ in range(100):
                if sum('"detections"' in m for m in viewer.messages) >= 5:
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


def test_last_viewer_leaving_stops_the_cameras_reader(camera_clip: Path):
    async def scenario() -> tuple[int, int, list[dict[str, Any]], bool]:
        views = LiveViews()
        first, second = Viewer(), Viewer()
        camera = source("river-pier", camera_clip)
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
        try:
            await asyncio.wait_for(track.recv(), 5)
        except (MediaStreamError, TimeoutError):
            ended = True
        for viewer in (first, second):
            await viewer.pc.close()
        return len(shared), still, views.stats(), ended

    readers, viewers_after_one_left, after, ended = run(scenario())
    assert readers == 1, "two viewers of a camera share one reader"
    assert viewers_after_one_left == 1
    assert after == [] and ended


def test_offer_without_video_is_refused_with_the_reason(camera_clip: Path):
    async def scenario() -> LiveViewError:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.createDataChannel("detections")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            await LiveViews().answer(source("river-pier", camera_clip), pc.localDescription)
        except LiveViewError as err:
            return err
        finally:
            await pc.close()
        raise AssertionError("an offer without video was answered")

    err = run(scenario())
    assert err.status == 422 and "no video section" in str(err)


@pytest.mark.rtsp
def test_rtsp_camera_is_passed_through_bit_exact(rtsp_server: Any, rtsp_clip: Path):
    """The production case: a real RTSP camera (Annex B with SPS/PPS in the SDP)."""
    camera = CameraSource("rtsp-cam", rtsp_server.url("cam"), StreamSettings(), "cell-river-01",
                          [], None)

    async def scenario() -> tuple[dict[str, Any], list[av.VideoFrame], list[dict[str, Any]]]:
        views = LiveViews()
        viewer = Viewer()
        try:
            answer = await viewer.call(views, camera)
            frames = await viewer.frames(30)
            return answer, frames, views.stats()
        finally:
            await viewer.pc.close()
            await views.close_all()

    answer, frames, stats = run(scenario())
    assert answer["mode"] == "passthrough" and answer["codec"] == "H264"
    original = clip_digests(rtsp_clip)
    assert all(luma_digest(f) in original for f in frames), "a picture was re-encoded"
    assert stats[0]["frames"] == 0 and stats[0]["packets"] >= 30
