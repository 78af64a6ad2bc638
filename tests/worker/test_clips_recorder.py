"""Evidence clips cut from a camera's packet buffer: pre-roll from a keyframe, post-roll,
the camera's own bytes remuxed into a playable MP4.

Cameras are real: the gst-rtsp-server test camera (a real clip, no B-frames, keyframe every
0.5 s, looping live) and the real boat clip with B-frames played as a paced file.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.ingest.camera import CameraRunner
from gridwatch.ingest.packet_buffer import PacketRingBuffer, SegmentSpool
from gridwatch.settings.clips import ClipSettings
from gridwatch.settings.stream import StreamSettings
from gridwatch.worker.clips import Clip, ClipRecorder, packet_buffer
from tests.support.rtsp import RtspTestServer, cache_dir

pytest_plugins = ("tests.support.rtsp_fixtures",)

FRAME_S = 1001 / 30000
RTSP_GOP_S = 0.5
JITTER_S = 0.15


class Ready:
    """Collects `on_ready` calls; `wait` returns the clip of a key once written."""

    def __init__(self) -> None:
        self.clips: dict[str, Clip] = {}
        self._cond = threading.Condition()

    def __call__(self, clip: Clip) -> None:
        with self._cond:
            self.clips[clip.key] = clip
            self._cond.notify_all()

    def wait(self, key: str, timeout: float = 15.0) -> Clip:
        with self._cond:
            if not self._cond.wait_for(lambda: key in self.clips, timeout):
                raise TimeoutError(f"clip {key!r} not ready within {timeout} s")
            return self.clips[key]


def wait_for_span(buffer: PacketRingBuffer, seconds: float, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        window = buffer.window(float("-inf"))
        if window and window[-1].wall - window[0].wall >= seconds:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the buffer did not reach {seconds} s: {buffer.stats()}")


def recorder_on(buffer: PacketRingBuffer | None, evidence: EvidenceWriter, filled_s: float,
                **settings: float) -> tuple[ClipRecorder, Ready]:
    """A recorder on `buffer` (once it holds `filled_s` seconds) and its ready clips."""
    assert buffer is not None
    ready = Ready()
    recorder = ClipRecorder(buffer, evidence, ClipSettings(**settings), on_ready=ready)
    wait_for_span(buffer, filled_s)
    return recorder, ready


def hevc_copy(source: Path, seconds: float = 3.0) -> Path:
    """An H.265 copy of a real clip (B-frames, a keyframe a second), made once and cached."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"{source.stem}-{digest}-hevc-t{seconds}.mp4"
    if not target.is_file():
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".mp4", delete=False) as tmp:
            partial = Path(tmp.name)
        try:
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-t", str(seconds),
                            "-an", "-c:v", "libx265", "-preset", "ultrafast",
                            "-x265-params", "log-level=error", "-g", "30", str(partial)],
                           check=True, capture_output=True, timeout=120)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def mp4_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(video=0) if p.size]


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def slices(avcc: bytes) -> list[bytes]:
    """The picture slices (NAL types 1 and 5) of a length-prefixed H.264 access unit."""
    out, i = [], 0
    while i + 4 <= len(avcc):
        size = int.from_bytes(avcc[i:i + 4], "big")
        nal = avcc[i + 4:i + 4 + size]
        if nal and nal[0] & 0x1F in (1, 5):
            out.append(nal)
        i += 4 + size
    return out


def playable_packets(file: Path, clip: Clip) -> list[av.Packet]:
    """The clip's packets, after checking each decodes to a frame, in decode order."""
    packets = mp4_packets(file)
    assert len(packets) == decoded_frames(file) == clip.packets
    dts = [p.dts for p in packets]
    assert dts == sorted(set(dts)), "dts must increase strictly"
    assert all(p.pts >= p.dts for p in packets)
    assert packets[0].is_keyframe
    return packets


def assert_source_bytes(packets: list[av.Packet], source: Path) -> None:
    """No re-encoding: the packets are the file's packets, byte for byte, in order (across
    the loop back to its start when the clip spans it)."""
    original = [bytes(p) for p in mp4_packets(source)]
    first = original.index(bytes(packets[0]))
    assert [bytes(p) for p in packets] == [
        original[(first + i) % len(original)] for i in range(len(packets))]


@contextmanager
def paced_camera(clip: Path, max_seconds: float, keyframes_only: bool = False,
                 spool: Path | None = None) -> Iterator[CameraRunner]:
    """A real clip looping in real time as a camera, with a packet buffer (in memory, or
    spooled to `spool`)."""
    options = StreamSettings(realtime=True, loop=True, keyframes_only=keyframes_only)
    buffer = PacketRingBuffer(max_seconds=max_seconds,
                              spool=SegmentSpool(spool) if spool is not None else None)
    runner = CameraRunner(clip.stem, str(clip), options, packet_buffer=buffer).start()
    try:
        yield runner
    finally:
        runner.stop()
        buffer.close()


@pytest.fixture
def evidence(tmp_path: Path) -> EvidenceWriter:
    return EvidenceWriter(tmp_path / "evidence")


@pytest.fixture
def live_camera(rtsp_server: RtspTestServer, request: pytest.FixtureRequest,
                ) -> Iterator[CameraRunner]:
    keyframes_only = getattr(request, "param", False)
    buffer = PacketRingBuffer(max_seconds=4.0)
    runner = CameraRunner("cam", rtsp_server.url("cam"),
                          StreamSettings(keyframes_only=keyframes_only), packet_buffer=buffer)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.mark.parametrize("store", ["memory", "spool"])
def test_clip_of_a_b_frame_camera_is_its_packets_remuxed_in_decode_order(
    footage_dir: Path, evidence: EvidenceWriter, tmp_path: Path, store: str,
) -> None:
    source = footage_dir / "fishing_boat_sea_640x360_30fps.mp4"
    spool = tmp_path / "spool" if store == "spool" else None
    with paced_camera(source, 8.0, spool=spool) as camera:
        recorder, ready = recorder_on(camera.packet_buffer, evidence, 3.5,
                                      pre_roll_s=2.0, post_roll_s=1.0, max_clip_s=10)
        event_wall = time.time() - 0.3
        path = recorder.start("boat-1", event_wall, name="inc-boat")
        clip = ready.wait("boat-1")
        if spool is not None:
            # One file per GOP buffered (3 s GOPs, 8 s kept), evicted ones unlinked.
            assert 1 <= len(list(spool.glob("*.gop"))) <= 4
    if spool is not None:
        assert not spool.exists(), "a stopped camera's spool is removed"

    day = datetime.fromtimestamp(event_wall, UTC)
    assert clip.path == path == f"{day:%Y/%m/%d}/inc-boat.mp4"
    file = evidence.path_of(path)
    # Pre-roll from the keyframe at or before (event - 2 s): the clip's GOP is 3 s.
    assert event_wall - 2.0 - 3.0 - JITTER_S <= clip.start_wall <= event_wall - 2.0
    assert event_wall + 1.0 - FRAME_S - JITTER_S <= clip.end_wall <= event_wall + 1.0
    packets = playable_packets(file, clip)
    with av.open(str(file)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 640, 360)
        assert abs(container.duration / 1e6 - clip.duration_s) <= 0.15
    assert abs(clip.duration_s - (clip.end_wall - clip.start_wall)) <= 0.2
    assert_source_bytes(packets, source)


def test_clip_is_cut_around_the_events_frame_when_decoding_runs_ahead_of_time(
    footage_dir: Path, evidence: EvidenceWriter,
) -> None:
    # Keyframes only, B-frames, paced after decoding: the decoder hands a keyframe out a GOP
    # late and the frame's wall time (its decoding) lies seconds from its packet's arrival.
    source = footage_dir / "fishing_boat_sea_640x360_30fps.mp4"
    with paced_camera(source, 12.0, keyframes_only=True) as camera:
        recorder, ready = recorder_on(camera.packet_buffer, evidence, 0.0,
                                      pre_roll_s=2.0, post_roll_s=1.0, max_clip_s=10)
        frame = camera.get(timeout=10)
        while frame is not None and frame.t < 2.9:
            frame = camera.get(timeout=10)
        assert frame is not None and frame.video_frame is not None
        recorder.start("kf", frame.wall, frame=frame)
        clip = ready.wait("kf")

    packets = playable_packets(evidence.path_of(clip.path), clip)
    assert_source_bytes(packets, source)
    # From the keyframe at or before t - 2 s (the GOP is 3 s: t = 0) to t + 1 s (timed in
    # decode order: B-frames shown up to 3 frames later may end it).
    original = mp4_packets(source)
    assert bytes(packets[0]) == bytes(original[0])
    assert clip.duration_s == pytest.approx(frame.t + 1.0, abs=JITTER_S)
    shown = next(i for i, p in enumerate(original) if p.pts == frame.video_frame.pts)
    assert shown < len(packets)


@pytest.mark.parametrize("live_camera", [False, True], ids=["every-frame", "keyframes-only"],
                         indirect=True)
def test_clip_of_a_live_camera_has_pre_and_post_roll_and_every_frame_it_sent(
    live_camera: CameraRunner, rtsp_clip: Path, evidence: EvidenceWriter,
) -> None:
    recorder, ready = recorder_on(live_camera.packet_buffer, evidence, 2.0,
                                  pre_roll_s=1.0, post_roll_s=1.0, max_clip_s=5)
    event_wall = time.time() - 0.2
    recorder.start("incident-a", event_wall)
    clip = ready.wait("incident-a")

    assert event_wall - 1.0 - RTSP_GOP_S - JITTER_S <= clip.start_wall <= event_wall - 1.0
    assert event_wall + 1.0 - FRAME_S - JITTER_S <= clip.end_wall <= event_wall + 1.0
    file = evidence.path_of(clip.path)
    # Every frame the camera sent, also when the analysis decodes keyframes only.
    packets = playable_packets(file, clip)
    assert abs(clip.packets * FRAME_S - clip.duration_s) <= FRAME_S
    assert abs(clip.duration_s - (clip.end_wall - clip.start_wall)) <= 0.2
    assert clip.duration_s >= 2.0 - JITTER_S
    assert (clip.codec, clip.width, clip.height) == ("h264", 640, 360)
    with av.open(str(file)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 640, 360)
    # No re-encoding: every picture slice is one the server read from its file (it sends
    # them Annex B, the MP4 keeps them length-prefixed; the slice bytes are the same).
    served = {nal for p in mp4_packets(rtsp_clip) for nal in slices(bytes(p))}
    clip_slices = [nal for p in packets for nal in slices(bytes(p))]
    assert len(clip_slices) == len(packets)
    assert set(clip_slices) <= served


def test_events_extend_a_clip_up_to_its_maximum(
    live_camera: CameraRunner, evidence: EvidenceWriter,
) -> None:
    recorder, ready = recorder_on(live_camera.packet_buffer, evidence, 1.5,
                                  pre_roll_s=0.5, post_roll_s=0.5, max_clip_s=2.0)
    now = time.time()
    recorder.start("long", now)
    assert recorder.extend("long", now + 0.8)
    assert recorder.extend("long", now + 5.0)
    assert not recorder.extend("unknown", now)
    clip = ready.wait("long")

    assert clip.end_wall - clip.start_wall == pytest.approx(2.0, abs=FRAME_S + JITTER_S)
    assert recorder.recording == []


def test_finish_writes_what_has_arrived_without_waiting_for_the_post_roll(
    live_camera: CameraRunner, evidence: EvidenceWriter,
) -> None:
    recorder, ready = recorder_on(live_camera.packet_buffer, evidence, 1.0,
                                  pre_roll_s=0.5, post_roll_s=20.0, max_clip_s=30.0)
    started = time.monotonic()
    recorder.start("stopping", time.time())
    time.sleep(0.5)
    recorder.close()
    clip = ready.wait("stopping", timeout=0.1)

    assert time.monotonic() - started < 3.0
    assert 0.5 <= clip.duration_s <= 0.5 + RTSP_GOP_S + 1.0
    playable_packets(evidence.path_of(clip.path), clip)


def test_clip_spanning_a_reconnect_is_one_playable_file(
    make_rtsp_server, evidence: EvidenceWriter,
) -> None:
    server = make_rtsp_server()
    buffer = PacketRingBuffer(max_seconds=4.0)
    runner = CameraRunner("cam", server.url("cam"), StreamSettings(backoff_initial_s=0.2),
                          packet_buffer=buffer).start()
    try:
        recorder, ready = recorder_on(buffer, evidence, 1.0,
                                      pre_roll_s=0.5, post_roll_s=7.0, max_clip_s=10)
        event_wall = time.time()
        recorder.start("outage", event_wall)
        time.sleep(0.5)
        server.restart()
        clip = ready.wait("outage")
    finally:
        runner.stop()

    file = evidence.path_of(clip.path)
    playable_packets(file, clip)
    # Both sessions are in it, played one after the other: the outage is left out.
    assert clip.end_wall > event_wall + 5.0
    assert clip.duration_s < clip.end_wall - clip.start_wall - 1.0
    with av.open(str(file)) as container:
        keys = [p for p in container.demux(video=0) if p.size and p.is_keyframe]
    assert len(keys) >= 3


def test_h265_camera_clip_is_passed_through_under_the_tag_browsers_take(
    footage_dir: Path, evidence: EvidenceWriter,
) -> None:
    source = hevc_copy(footage_dir / "fishing_boat_sea_640x360_30fps.mp4")
    with paced_camera(source, 4.0) as camera:
        recorder, ready = recorder_on(camera.packet_buffer, evidence, 1.5,
                                      pre_roll_s=1.0, post_roll_s=0.5, max_clip_s=5)
        recorder.start("h265", time.time())
        clip = ready.wait("h265")

    file = evidence.path_of(clip.path)
    packets = playable_packets(file, clip)
    with av.open(str(file)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("hevc", 640, 360)
        assert stream.codec_tag == "hvc1"
    assert_source_bytes(packets, source)


def test_clip_lengths_must_leave_room_for_both_rolls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_clip_s"):
        ClipSettings(pre_roll_s=10, post_roll_s=5, max_clip_s=12)
    settings = ClipSettings(pre_roll_s=4, post_roll_s=2, buffer_max_bytes=1_000_000)
    buffer = packet_buffer(settings, "cam", tmp_path / "evidence")
    # The pre-roll, plus room for the analysis to run behind the camera.
    assert (buffer.max_seconds, buffer.max_bytes) == (9.0, 1_000_000)
