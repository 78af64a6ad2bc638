"""A worker's live stream of a camera: keyframe starts, a slow viewer, a silent viewer.

Real packets throughout: a camera-like copy of the boat clip (H.264 Main, a keyframe a
second, no B-frames), demuxed with PyAV or read by a real `CameraRunner`, sent over a real
multiprocessing pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path

import av
import pytest

from gridwatch.ingest.camera import CameraRunner
from gridwatch.ingest.packet_buffer import PacketRingBuffer
from gridwatch.ingest.packet_tap import EncodedPacket, StreamDescription
from gridwatch.settings.stream import StreamSettings
from gridwatch.worker.live import LiveLink, LiveStreamer
from tests.support.console import camera_like_copy

BOAT = "fishing_boat_sea_640x360_30fps.mp4"


@pytest.fixture(scope="module")
def camera_clip(footage_dir: Path) -> Path:
    return camera_like_copy(footage_dir / BOAT)


def clip_packets(path: Path) -> tuple[list[tuple[int, bool]], int]:
    """(pts, keyframe) of every packet of the clip, and its keyframe count."""
    with av.open(str(path)) as container:
        stamps = [(p.pts, p.is_keyframe) for p in container.demux(video=0)
                  if p.size and p.pts is not None]
    return stamps, sum(k for _, k in stamps)


def drain(link: LiveLink, quiet_s: float = 1.0) -> list[StreamDescription | EncodedPacket]:
    out: list[StreamDescription | EncodedPacket] = []
    while True:
        try:
            message = link.receive(quiet_s)
        except EOFError:
            return out
        if message is None:
            return out
        out.append(message)


def test_a_slow_viewer_never_holds_up_ingest_and_resumes_at_a_keyframe(camera_clip: Path):
    mine, theirs = mp.Pipe(duplex=True)
    link = LiveLink(mine)
    streamer = LiveStreamer("river-pier", theirs, max_queued=10).start()
    original, _ = clip_packets(camera_clip)
    order = {pts: i for i, (pts, _) in enumerate(original)}
    # Ingest stops a few packets after a late keyframe, so what is left queued shows where
    # the stream resumed after the last drop.
    last = max(i for i, (_, key) in enumerate(original) if key and i + 5 < len(original)) + 5
    most_queued = 0

    def ingest() -> None:
        # Nobody reads the pipe meanwhile: the streamer's send blocks once its buffer is full.
        nonlocal most_queued
        with av.open(str(camera_clip)) as container:
            stream = container.streams.video[0]
            streamer.begin(stream)
            for index, packet in enumerate(p for p in container.demux(stream) if p.size):
                if index > last:
                    return
                streamer.push(packet, time.time())
                most_queued = max(most_queued, streamer.queued)

    reader = threading.Thread(target=ingest)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "pushing blocked the camera's reader"
    assert most_queued <= 10
    assert streamer.dropped > 0, "the viewer fell behind and packets were dropped"

    received = drain(link)
    streamer.stop()
    link.close()
    assert isinstance(received[0], StreamDescription)
    assert received[0].codec == "h264" and received[0].b_frames is False
    assert received[0].extradata == b"", "SPS/PPS travel in the packets (Annex B)"
    packets = [m for m in received if isinstance(m, EncodedPacket)]
    assert packets[0].keyframe, "the stream starts at a keyframe"
    assert all(p.data.startswith(b"\x00\x00\x00\x01") for p in packets), "Annex B"
    positions = [order[p.pts] for p in packets if p.pts is not None]
    assert positions == sorted(positions)
    gaps = [i for i in range(1, len(positions)) if positions[i] != positions[i - 1] + 1]
    assert gaps, "some packets were dropped"
    assert all(packets[i].keyframe for i in gaps), "after a drop the stream resumes at a keyframe"
    assert len(packets) + streamer.dropped <= last + 1


def test_a_viewer_that_stops_its_keepalives_gets_its_stream_stopped(camera_clip: Path):
    buffer = PacketRingBuffer(max_seconds=5)
    runner = CameraRunner("river-pier", str(camera_clip),
                          StreamSettings(loop=True, realtime=True),
                          packet_buffer=buffer).start()
    mine, theirs = mp.Pipe(duplex=True)
    link = LiveLink(mine)
    streamer = LiveStreamer("river-pier", theirs, keepalive_timeout_s=2.0,
                            on_end=runner.packets.remove).start()
    try:
        runner.packets.add(streamer)
        kept_alive: list[StreamDescription | EncodedPacket] = []
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            link.keepalive()
            message = link.receive(0.5)
            if message is not None:
                kept_alive.append(message)
        assert streamer.running, "a viewer that keeps it alive keeps its stream"
        assert sum(isinstance(m, EncodedPacket) for m in kept_alive) >= 60

        started = time.monotonic()
        ended = False
        while time.monotonic() - started < 10:
            try:
                link.receive(0.5)
            except EOFError:
                ended = True
                break
        silent_s = time.monotonic() - started
    finally:
        link.close()
        runner.stop()
    assert ended, "the stream ended"
    assert streamer.join(5)
    assert streamer.end_reason == "no keepalive for 2 s"
    assert 1.0 <= silent_s < 5.0
    assert runner.packets.sinks == (buffer,), "the streamer left the camera's tap"
    assert buffer.pushed > 0, "the clip buffer was fed by the same connection meanwhile"
