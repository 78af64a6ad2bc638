"""The camera's packet ring buffer: bounded in time and bytes, always cut at a keyframe.

Real streams only: the gst-rtsp-server test camera (a looping real clip, keyframe every
0.5 s) and the real shared clips read as files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from gridwatch.ingest.av_source import AvSource
from gridwatch.ingest.camera import CameraRunner
from gridwatch.ingest.packet_buffer import BufferedPacket, PacketRingBuffer, SegmentSpool
from gridwatch.settings.stream import StreamSettings
from tests.support.rtsp import RtspTestServer

pytest_plugins = ("tests.support.rtsp_fixtures",)

BOAT = "fishing_boat_sea_640x360_30fps.mp4"
GOP_S = 0.5  # rtsp_clip: a keyframe every 15 frames at 30 fps


def test_buffer_holds_the_last_seconds_from_a_keyframe_on_a_looping_camera(
    rtsp_server: RtspTestServer,
) -> None:
    buffer = PacketRingBuffer(max_seconds=1.5, max_bytes=16 * 1024 * 1024)
    runner = CameraRunner("cam", rtsp_server.url("cam"), packet_buffer=buffer).start()
    samples = []
    try:
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            time.sleep(0.25)
            window = buffer.window(float("-inf"))
            if window:
                samples.append((window[-1].wall - window[0].wall, window[0].keyframe,
                                buffer.stats()))
    finally:
        runner.stop()

    filled = [s for s in samples if s[2]["evicted_bytes"] > 0]
    assert len(filled) >= 8, "the buffer never filled past 1.5 s in 6 s of stream"
    spans = [span for span, _, _ in filled]
    # At least the configured seconds, at most one GOP more (plus the arrival jitter).
    assert min(spans) >= 1.5 - 0.2, spans
    assert max(spans) <= 1.5 + GOP_S + 0.2, spans
    assert all(first_is_key for _, first_is_key, _ in samples)
    last = samples[-1][2]
    assert last["pushed"] > 2 * last["packets"], "old packets must be evicted, not kept"
    assert last["codec"] == "h264"
    assert runner.health()["packet_buffer"]["packets"] > 0


def test_byte_budget_bounds_memory_whatever_the_stream_does(footage_dir: Path) -> None:
    # The boat clip's GOP is 90 frames (~230 kB): 300 kB keeps about one GOP, never more.
    budget = 300_000
    buffer = PacketRingBuffer(max_seconds=3600, max_bytes=budget)
    source = AvSource(str(footage_dir / BOAT), StreamSettings(loop=True), "boat", live=False)
    source.record_packets(buffer)
    seen_bytes = []
    with source:
        for frame in source:
            seen_bytes.append(buffer.size_bytes)
            window = buffer.window(float("-inf"))
            assert not window or window[0].keyframe
            if frame.index >= 1200:  # two passes over the 19 s clip
                break
    stats = buffer.stats()
    assert max(seen_bytes) <= budget
    assert stats["evicted_bytes"] > 2 * budget
    assert stats["bytes"] == sum(p.size for p in buffer.window(float("-inf")))


def test_a_gop_larger_than_the_budget_empties_the_buffer_until_the_next_keyframe(
    footage_dir: Path,
) -> None:
    buffer = PacketRingBuffer(max_seconds=3600, max_bytes=100_000)
    source = AvSource(str(footage_dir / BOAT), StreamSettings(), "boat", live=False)
    source.record_packets(buffer)
    firsts = set()
    with source:
        for _ in source:
            assert buffer.size_bytes <= 100_000
            window = buffer.window(float("-inf"))
            if window:
                assert window[0].keyframe
                firsts.add(window[0].seq)
    stats = buffer.stats()
    assert stats["overflows"] >= 3
    assert stats["skipped"] > 0, "P-frames without their keyframe must not be kept"
    assert len(firsts) >= 3


def test_a_codec_mp4_cannot_carry_is_not_buffered(footage_dir: Path) -> None:
    buffer = PacketRingBuffer()
    gif = footage_dir / "parking_lot_person_bike_car_480x270.gif"
    source = AvSource(str(gif), StreamSettings(), "lot", live=False)
    source.record_packets(buffer)
    with source:
        frames = sum(1 for _ in source)
    assert frames > 0
    assert buffer.stats()["packets"] == 0
    assert buffer.stats()["codec"] is None


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        PacketRingBuffer(max_seconds=0)
    with pytest.raises(ValueError, match="max_bytes"):
        PacketRingBuffer(max_bytes=-1)


def feed(buffer: PacketRingBuffer, footage_dir: Path, last: int,
         on_frame: Callable[[int], None] | None = None) -> None:
    """Read the boat clip into `buffer` as fast as it decodes, up to frame `last`."""
    source = AvSource(str(footage_dir / BOAT), StreamSettings(), "boat", live=False)
    source.record_packets(buffer)
    with source:
        for frame in source:
            if on_frame is not None:
                on_frame(frame.index)
            if frame.index == last:
                break


def assert_boat_packets(packets: list[BufferedPacket], footage_dir: Path) -> None:
    """The packets' bytes are consecutive packets of the boat clip, as demuxed."""
    with av.open(str(footage_dir / BOAT)) as container:
        original = [bytes(p) for p in container.demux(video=0) if p.size]
    start = original.index(packets[0].data)
    assert [p.data for p in packets] == original[start:start + len(packets)]


def test_spooled_buffer_keeps_only_an_index_in_memory_and_the_bytes_on_disk(
    footage_dir: Path, tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool" / "boat"
    buffer = PacketRingBuffer(max_seconds=3600, max_bytes=600_000,
                              spool=SegmentSpool(spool_dir))
    feed(buffer, footage_dir, 300)
    window = buffer.window(float("-inf"))
    assert buffer.stats()["evicted_bytes"] > 0
    files = sorted(spool_dir.glob("*.gop"))
    # One file per buffered GOP (named by its keyframe), the evicted ones unlinked.
    assert [int(f.stem) for f in files] == [p.seq for p in window if p.keyframe]
    assert sum(f.stat().st_size for f in files) == buffer.size_bytes
    assert all(isinstance(p.store, bytes) for p in window), "readers get copies"
    assert_boat_packets(window, footage_dir)
    assert buffer.stats()["store"] == "spool"


def test_packets_a_clip_holds_stay_readable_after_their_gop_is_evicted(
    footage_dir: Path, tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool"
    # Read as fast as it decodes: the byte budget (about one 3 s GOP) evicts, not the time.
    buffer = PacketRingBuffer(max_seconds=3600, max_bytes=300_000,
                              spool=SegmentSpool(spool_dir))
    held: list[BufferedPacket] = []

    def hold(index: int) -> None:
        if index == 10:
            held.extend(buffer.window(float("-inf")))

    feed(buffer, footage_dir, 400, hold)
    assert held and held[0].seq < buffer.window(float("-inf"))[0].seq
    assert not (spool_dir / f"{held[0].seq:012d}.gop").exists(), "evicted files are unlinked"
    assert_boat_packets(held, footage_dir)


def test_spool_removes_stale_files_and_its_folder_when_the_camera_stops(
    footage_dir: Path, tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "000000000007.gop").write_bytes(b"left by a killed worker")
    buffer = PacketRingBuffer(spool=SegmentSpool(spool_dir))
    assert not list(spool_dir.iterdir())
    feed(buffer, footage_dir, 100)
    assert list(spool_dir.glob("*.gop"))
    buffer.close()
    assert not spool_dir.exists()
    assert buffer.stats()["packets"] == 0


def test_a_failing_spool_drops_the_gop_and_buffers_again_once_it_can_write(
    footage_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    spool_dir = tmp_path / "spool"
    buffer = PacketRingBuffer(max_seconds=3600, spool=SegmentSpool(spool_dir))

    def fail_then_recover(index: int) -> None:
        if index == 100:  # the disk goes away under the camera
            for file in spool_dir.iterdir():
                file.unlink()
            spool_dir.rmdir()
        if index == 200:
            assert buffer.stats()["packets"] == 0
            spool_dir.mkdir()

    feed(buffer, footage_dir, 400, fail_then_recover)
    assert buffer.stats()["spool_errors"] > 0
    assert "evidence spool" in caplog.text and "clips lose this GOP" in caplog.text
    window = buffer.window(float("-inf"))
    assert window and window[0].keyframe, "buffering resumed at a keyframe"
    assert_boat_packets(window, footage_dir)


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
def test_readers_see_every_packet_handed_over_before_its_batch_is_full(
    footage_dir: Path, tmp_path: Path, spooled: bool,
) -> None:
    buffer = PacketRingBuffer(spool=SegmentSpool(tmp_path / "spool") if spooled else None)
    with av.open(str(footage_dir / BOAT)) as container:
        stream = container.streams.video[0]
        buffer.begin(stream)
        packets = [p for p in container.demux(stream) if p.size][:3]
        for wall, packet in enumerate(packets):
            buffer.push(packet, float(wall))
        assert buffer.last_seq == 2
        assert buffer.size_bytes == sum(p.size for p in packets)
        assert buffer.newest_wall == 2.0
        assert buffer.find(packets[1].pts) is not None
        assert_boat_packets(buffer.window(float("-inf")), footage_dir)
        assert [p.seq for p in buffer.after(0)[0]] == [1, 2]
