"""Sources on the real shared footage: files, GIFs, image folders, damage, options."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from gridwatch.common.redact import redact
from gridwatch.ingest.backoff import ReconnectDelays
from gridwatch.ingest.camera import CameraRunner
from gridwatch.ingest.errors import SourceError
from gridwatch.ingest.mailbox import LatestFrame
from gridwatch.ingest.sources import open_source
from gridwatch.ingest.state import CameraState
from gridwatch.settings.stream import StreamSettings


def _increasing(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(("name", "frames", "duration"), [
    ("fishing_boat_sea_640x360_30fps.mp4", 569, 18.95),
    ("cctv_road_cart_320x240_3fps.mp4", 50, 16.33),
    ("crowd_hall_topdown_1280x720.avi", 341, 13.58),
])
def test_video_file_yields_every_frame_with_increasing_media_time(
    footage_dir: Path, name: str, frames: int, duration: float,
) -> None:
    with open_source(str(footage_dir / name), camera_id="cam") as source:
        got = list(source)
    assert len(got) == frames
    assert got[0].t == 0.0
    assert got[-1].t == pytest.approx(duration, abs=0.05)
    assert _increasing([f.t for f in got])
    assert [f.index for f in got] == list(range(frames))
    assert got[0].keyframe
    assert {f.camera_id for f in got} == {"cam"}
    first = got[0]
    assert first.gray().shape == (first.height, first.width)
    assert first.bgr().shape == (first.height, first.width, 3)


def test_gif_decodes_all_frames_with_their_delays(footage_dir: Path) -> None:
    with open_source(str(footage_dir / "parking_lot_person_bike_car_480x270.gif")) as source:
        got = list(source)
    assert len(got) == 41
    assert (got[0].width, got[0].height) == (480, 270)
    assert _increasing([f.t for f in got])
    assert got[-1].t == pytest.approx(40 / 12.5, abs=0.3)
    assert got[5].bgr().shape == (270, 480, 3)


def test_image_folder_plays_in_name_order_at_configured_fps(footage_dir: Path) -> None:
    folder = footage_dir / "pets2001_ds3_cam1_550_799"
    with open_source(f"file://{folder}", StreamSettings(fps=25)) as source:
        names = [p.name for p in source.files]
        got = list(source)
    assert names[0] == "in000550.jpg" and names[-1] == "in000799.jpg"
    assert len(got) == 250
    assert [f.t for f in got[:3]] == pytest.approx([0.0, 0.04, 0.08])
    assert got[-1].t == pytest.approx(249 / 25)
    assert (got[0].width, got[0].height) == (320, 240)
    assert got[0].gray().shape == (240, 320)


def test_looping_file_continues_media_time_past_the_end(footage_dir: Path) -> None:
    clip = footage_dir / "cctv_road_cart_320x240_3fps.mp4"
    with open_source(str(clip), StreamSettings(loop=True)) as source:
        frames = source.frames()
        got = [next(frames) for _ in range(120)]
    times = [f.t for f in got]
    assert _increasing(times)
    assert times[50] == pytest.approx(times[49] + 1 / 3, abs=0.01)
    assert times[-1] == pytest.approx(119 / 3, abs=0.05)


def test_realtime_file_is_paced_like_a_camera(footage_dir: Path) -> None:
    clip = footage_dir / "cctv_road_cart_320x240_3fps.mp4"
    with open_source(str(clip), StreamSettings(realtime=True)) as source:
        frames = source.frames()
        started = time.monotonic()
        got = [next(frames) for _ in range(7)]
        elapsed = time.monotonic() - started
    assert got[-1].t == pytest.approx(2.0)
    assert 1.8 <= elapsed <= 2.6


def test_corrupt_file_keeps_decoding_after_the_damaged_region(
    footage_dir: Path, tmp_path: Path,
) -> None:
    original = footage_dir / "fishing_boat_sea_640x360_30fps.mp4"
    damaged = tmp_path / "damaged.mp4"
    shutil.copyfile(original, damaged)
    offset, length = damaged.stat().st_size // 2, 32 * 1024
    with damaged.open("r+b") as f:
        f.seek(offset)
        f.write(np.random.default_rng(7).integers(0, 256, length, dtype=np.uint8).tobytes())
    with av.open(str(original)) as container:
        hit = [float(p.pts * p.time_base) for p in container.demux(video=0)
               if p.pos is not None and p.pos + p.size > offset and p.pos < offset + length]
    damage_end = max(hit)

    with open_source(str(damaged)) as source:
        got = list(source)
        errors = source.counters.decode_errors

    assert hit, "the overwritten bytes must fall inside video packets"
    assert errors > 0
    after = [f for f in got if f.t > damage_end + 0.1]
    assert len(after) > 250
    assert got[-1].t == pytest.approx(18.95, abs=0.05)


def test_keyframes_only_switches_at_runtime_without_reopening(footage_dir: Path) -> None:
    clip = footage_dir / "indoor_people_walk_768x432_10fps.mp4"
    with open_source(str(clip)) as source:
        frames = source.frames()
        full = [next(frames) for _ in range(100)]
        source.set_keyframes_only(True)
        sparse = [next(frames) for _ in range(10)]
        source.set_keyframes_only(False)
        back = [next(frames) for _ in range(30)]
    assert sum(not f.keyframe for f in full) > 80
    assert all(f.keyframe for f in sparse[2:])
    gaps = [b.t - a.t for a, b in itertools.pairwise(sparse[2:])]
    assert min(gaps) >= 0.9, "the clip has a keyframe per second, frames every 0.1 s"
    assert sum(not f.keyframe for f in back) > 20


def test_missing_file_and_empty_folder_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as missing:
        open_source(str(tmp_path / "nope.mp4"))
    assert missing.value.state is CameraState.NOT_FOUND
    assert "nope.mp4" in str(missing.value)
    with pytest.raises(SourceError) as empty:
        open_source(str(tmp_path))
    assert empty.value.state is CameraState.NOT_FOUND
    assert "no images" in str(empty.value)


def test_file_that_is_not_video_is_unsupported(tmp_path: Path) -> None:
    junk = tmp_path / "notes.mp4"
    junk.write_text("this is not a video\n" * 100)
    with pytest.raises(SourceError) as err:
        open_source(str(junk))
    assert err.value.state is CameraState.UNSUPPORTED


def test_unknown_url_scheme_is_unsupported_and_redacted() -> None:
    with pytest.raises(SourceError) as err:
        open_source("gopher://me:hunter2@example.invalid/cam")
    assert err.value.state is CameraState.UNSUPPORTED
    assert "hunter2" not in str(err.value)


def test_stream_option_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as bad_transport:
        StreamSettings(transport="http")
    assert bad_transport.value.errors()[0]["loc"] == ("transport",)
    with pytest.raises(ValidationError) as bad_timeout:
        StreamSettings(read_timeout_s=0)
    assert bad_timeout.value.errors()[0]["loc"] == ("read_timeout_s",)
    with pytest.raises(ValidationError) as bad_cap:
        StreamSettings(backoff_initial_s=5, backoff_max_s=1)
    assert bad_cap.value.errors()[0]["loc"] == ("backoff_max_s",)
    assert "backoff_initial_s" in str(bad_cap.value)
    with pytest.raises(ValidationError) as typo:
        StreamSettings(read_timeout=3)
    assert typo.value.errors()[0]["loc"] == ("read_timeout",)


@pytest.mark.parametrize(("text", "expected"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/live", "rtsp://admin:***@10.0.0.5:554/live"),
    ("open 'rtsp://u:p@ss@cam.local/x' failed", "open 'rtsp://u:***@cam.local/x' failed"),
    ("rtsp://10.0.0.5/live and http://a:b@h", "rtsp://10.0.0.5/live and http://a:***@h"),
    ("rtsp://user@host/x", "rtsp://user@host/x"),
])
def test_redact_hides_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_backoff_grows_with_jitter_is_capped_and_slower_after_rejection() -> None:
    backoff = ReconnectDelays(StreamSettings(backoff_initial_s=1, backoff_max_s=10,
                                    rejected_backoff_initial_s=5,
                                    rejected_backoff_max_s=60))
    delays = [backoff.next_delay(CameraState.OFFLINE) for _ in range(8)]
    assert 1 <= delays[0] <= 2
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[-1] == 10
    backoff.reset()
    assert backoff.next_delay(CameraState.AUTH_FAILED) >= 5


def test_mailbox_keeps_only_the_newest_frame(footage_dir: Path) -> None:
    box = LatestFrame()
    with open_source(str(footage_dir / "cctv_road_cart_320x240_3fps.mp4")) as source:
        frames = list(source)
    assert box.get(timeout=0.01) is None
    replaced = [box.put(f) for f in frames[:5]]
    assert replaced == [False, True, True, True, True]
    assert box.dropped == 4
    assert box.get(timeout=0.01) is frames[4]
    assert box.get(timeout=0.01) is None
    box.close()
    assert box.get(timeout=5) is None


def test_runner_on_a_file_ends_offline_at_end_of_file(footage_dir: Path) -> None:
    changes = []
    runner = CameraRunner("road", str(footage_dir / "cctv_road_cart_320x240_3fps.mp4"),
                          on_state=lambda cam, change: changes.append((cam, change.state)))
    runner.start()
    seen = []
    while (frame := runner.get(timeout=5)) is not None:
        seen.append(frame)
    assert runner.stop(timeout=5)
    health = runner.health()
    assert health["state"] == "offline" and health["reason"] == "end of file"
    assert health["counters"]["frames_decoded"] == 50
    assert health["counters"]["frames_decoded"] == len(seen) + health["counters"][
        "frames_dropped"]
    assert [s for _, s in changes] == [CameraState.CONNECTING, CameraState.ONLINE,
                                       CameraState.OFFLINE]
    assert seen[-1].index == 49
