"""Adaptive decode on a real RTSP camera: keyframes while the room is empty, every frame while
someone walks in, keyframes again after the quiet period; the real detection core decides."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridwatch.ingest.state import AnalysedFrame
from gridwatch.settings.analysis import AnalysisMode
from gridwatch.settings.camera import CameraSettings
from gridwatch.settings.model import ModelSettings
from gridwatch.settings.stream import StreamSettings
from gridwatch.worker.messages import EventFound, FrameAnalysed, WorkerMessage
from gridwatch.worker.shard import CameraShard, CameraTask, ShardSpec
from tests.support.rtsp import RtspTestServer, cache_dir

pytest_plugins = ["tests.support.rtsp_fixtures"]
pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(120)]

FPS = 10
GOP = 20
PERSON_ZONE = {"id": "floor", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
               "rules": [{"type": "presence", "kind": "intrusion", "classes": ["person"],
                          "min_dwell_s": 2, "end_after_s": 3}]}
FAST = StreamSettings(open_timeout_s=3, read_timeout_s=3, stall_timeout_s=5,
                     backoff_initial_s=0.2, backoff_max_s=1)


def quiet_walk_quiet(footage_dir: Path) -> Path:
    """The indoor camera: 6 s of empty room, 12 s of a person walking in and about, 18 s of
    empty room (its first seconds, three times). 10 fps, a keyframe every 2 s, no B-frames.
    Made once from the real clip and cached."""
    source = footage_dir / "indoor_people_walk_768x432_10fps.mp4"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"indoor-quiet-walk-quiet-{digest}-g{GOP}.mp4"
    if target.is_file():
        return target
    parts = [(0, 6), (7, 19), (0, 6), (0, 6), (0, 6)]
    graph = ";".join(f"[0:v]trim={a}:{b},setpts=PTS-STARTPTS[p{i}]"
                     for i, (a, b) in enumerate(parts))
    graph += ";" + "".join(f"[p{i}]" for i in range(len(parts)))
    graph += f"concat=n={len(parts)}:v=1:a=0[out]"
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".mp4", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-filter_complex", graph,
             "-map", "[out]", "-an", "-c:v", "libx264", "-profile:v", "main", "-preset",
             "veryfast", "-pix_fmt", "yuv420p", "-bf", "0", "-g", str(GOP), "-keyint_min",
             str(GOP), "-sc_threshold", "0", "-r", str(FPS), str(partial)],
            check=True, capture_output=True, timeout=120)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


class Collected:
    """The shard's messages, as the main process would receive them."""

    def __init__(self) -> None:
        self.messages: list[WorkerMessage] = []
        self._cond = threading.Condition()

    def send(self, message: WorkerMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def results(self) -> list[AnalysedFrame]:
        with self._cond:
            return [m.frame for m in self.messages if isinstance(m, FrameAnalysed)]

    def wait_for(self, predicate, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)


@pytest.fixture(scope="module")
def indoor_server(footage_dir: Path, rtsp_clip: Path) -> Iterator[RtspTestServer]:
    # (`rtsp_clip` fails the module early with the install hint when gst-rtsp-server lacks.)
    clip = quiet_walk_quiet(footage_dir)
    # One path per test: a shared media starts at its first client, so each test's camera
    # sees the clip from its beginning.
    with RtspTestServer({"watch": clip, "adaptive": clip}) as server:
        yield server


@pytest.fixture
def run_shard(models_dir: Path, tmp_path: Path) -> Iterator:
    shards: list[CameraShard] = []

    def run(url: str, mode: AnalysisMode, quiet_s: float = 2.0) -> Collected:
        camera = CameraSettings(id="indoor", url=url, zones=[PERSON_ZONE])
        task = CameraTask(camera, url, FAST, mode, fps=5.0, quiet_s=quiet_s, conf=0.3)
        spec = ShardSpec(0, (task,), ModelSettings(dir=models_dir), tmp_path / "evidence")
        out = Collected()
        shard = CameraShard(spec, out)
        shards.append(shard)
        shard.start()
        return out

    yield run
    for shard in shards:
        shard.stop()


def test_watch_mode_analyses_one_keyframe_per_gop_even_with_people_in_view(
    indoor_server: RtspTestServer, run_shard,
) -> None:
    out = run_shard(indoor_server.url("watch"), "watch")
    assert out.wait_for(lambda o: len(o.results()) >= 9, timeout=40), out.results()
    results = out.results()
    assert all(r.keyframe and r.mode == "watch" for r in results)
    steps = {round(b.t - a.t, 2) for a, b in itertools.pairwise(results)}
    assert steps == {2.0}, f"one analysed frame per 2 s GOP, got steps {steps}"
    assert any(r.detections for r in results), "the walker is seen on keyframes too"


def test_adaptive_camera_goes_active_when_a_walker_appears_and_back_to_watch_after_quiet(
    indoor_server: RtspTestServer, run_shard,
) -> None:
    out = run_shard(indoor_server.url("adaptive"), "adaptive", quiet_s=2.0)

    def back_to_watch(o: Collected) -> bool:
        modes = [r.mode for r in o.results()]
        return "active" in modes and modes[-1] == "watch" and modes.index("active") > 0

    assert out.wait_for(back_to_watch, timeout=60), [
        (round(r.t, 1), r.mode, len(r.detections)) for r in out.results()]
    results = out.results()
    first_active = next(i for i, r in enumerate(results) if r.mode == "active")
    last_active = max(i for i, r in enumerate(results) if r.mode == "active")
    watching, active = results[:first_active], results[first_active:last_active + 1]
    assert watching and all(r.keyframe and not r.detections for r in watching), \
        "the empty room is watched on keyframes"
    assert results[first_active - 1].detections or any(r.detections for r in active[:2])
    assert any(not r.keyframe for r in active), "active mode decodes every frame"
    steps = [round(b.t - a.t, 2) for a, b in itertools.pairwise(active)]
    assert min(steps) >= 0.19 and sorted(steps)[len(steps) // 2] == pytest.approx(0.2), \
        "analysed at 5 fps"
    seen = [r.t for r in active if r.detections]
    assert seen, "the walker is detected while active"
    assert results[last_active + 1].t - seen[-1] >= 2.0, "back only after the quiet period"
    events = [m.event for m in out.messages if isinstance(m, EventFound)]
    assert [e.phase for e in events][:1] == ["start"] and events[0].kind == "intrusion"
    assert events[0].frame is not None and events[0].frame.video_frame is None, \
        "the evidence frame travels as a BGR copy"
