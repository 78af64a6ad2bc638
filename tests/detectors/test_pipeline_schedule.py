"""The detection core's schedule on real footage: what the detector sees per analysed frame
(nothing, crops, sweeps), what is reported in between, and when ingest should decode every
frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from gridwatch.cli.analyze import frame_line
from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.pipeline import CameraAnalyzer, FrameResult
from gridwatch.ingest.frame import Frame
from gridwatch.settings.rules import PresenceRuleSettings
from gridwatch.settings.zones import ZoneSettings
from tests.support.sampled_frames import sampled_frames

BOAT = "fishing_boat_sea_640x360_30fps.mp4"
INDOOR = "indoor_people_walk_768x432_10fps.mp4"
LOBBY = [(0.0, 0.2), (1.0, 0.2), (1.0, 1.0), (0.0, 1.0)]


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> Detector:
    return create_detector("yolox_nano_coco_416", model_dir=models_dir)


def lobby(**options: object) -> ZoneSettings:
    return ZoneSettings(id="lobby", polygon=LOBBY, **options,
                    rules=[PresenceRuleSettings(kind="intrusion", classes=["person"],
                                            min_dwell_s=3)])


def analyse(analyzer: CameraAnalyzer, frames: list[Frame]) -> list[FrameResult]:
    results = [analyzer.process(f) for f in frames]
    return [r for r in results if r is not None]


def test_detector_skips_static_empty_frames_and_sweeps_each_zone_periodically(
    footage_dir: Path, detector: Detector,
) -> None:
    analyzer = CameraAnalyzer("lobby", [lobby(sweep_every_s=2.0)], detector, conf=0.5)
    results = analyse(analyzer, list(sampled_frames(footage_dir / INDOOR, stop=5.8)))
    assert len(results) == 29  # 5 fps of media time over 5.8 s of a 10 fps clip
    swept = [round(r.frame.t, 1) for r in results if r.look.kind == "sweep"]
    assert swept == [0.0, 2.0, 4.0]
    idle = [r for r in results if r.look.kind == "idle"]
    assert len(idle) == 26 and all(not r.look.regions and r.look.detector_ms == 0 for r in idle)
    assert all(r.detections == [] for r in results)
    assert analyzer.cost.inferences == 3 and analyzer.cost.detector.count == 3
    assert not analyzer.wants_active_mode


def test_person_walking_in_is_looked_at_through_motion_crops_and_counted(
    footage_dir: Path, detector: Detector,
) -> None:
    analyzer = CameraAnalyzer("lobby", [lobby()], detector, conf=0.5)
    results = analyse(analyzer, list(sampled_frames(footage_dir / INDOOR, start=20.4,
                                                    stop=32.0)))
    before = [r for r in results if r.frame.t < 22.6]
    assert all(r.zones["lobby"] == {} for r in before)
    assert not [r for r in before if r.look.kind == "regions"]
    arrival = [r for r in results if 22.7 <= r.frame.t < 23.5]
    assert any(reg.reason == "motion" for r in arrival for reg in r.look.regions)
    assert analyzer.wants_active_mode
    standing = [r for r in results if r.frame.t >= 24.0]
    counted = [r for r in standing if r.zones["lobby"].get("person") == 1]
    assert len(counted) >= 0.9 * len(standing)
    events = [e for r in results for e in r.events]
    assert [e.phase for e in events][:1] == ["start"]
    assert 25.7 <= events[0].t <= 26.7  # 3 s after the person is in view (22.7 s), +1 s


def test_person_standing_still_is_found_by_the_sweep_and_kept_without_an_inference_per_frame(
    footage_dir: Path, detector: Detector,
) -> None:
    """A real frame of a person at the table, repeated for 30 s: no motion at all, as with
    someone sitting still."""
    (still,) = [f.bgr() for f in sampled_frames(footage_dir / INDOOR, start=33.0, stop=33.1)]
    analyzer = CameraAnalyzer("lobby", [lobby(sweep_every_s=10.0)], detector, conf=0.5)
    frames = [Frame.from_bgr("lobby", i, i * 0.2, 1e9 + i * 0.2, still) for i in range(150)]
    results = analyse(analyzer, frames)
    assert results[0].look.kind == "sweep" and results[0].zones["lobby"] == {"person": 1}
    assert all(r.zones["lobby"] == {"person": 1} for r in results)
    assert not [r for r in results if r.look.motion.boxes]
    assert [round(r.frame.t) for r in results if r.look.kind == "sweep"] == [0, 10, 20]
    # Re-confirmed about once a second, carried over in between.
    assert 25 <= analyzer.cost.inferences <= 40
    assert sum(r.look.carried for r in results) >= 100
    assert analyzer.wants_active_mode
    assert [e.phase for r in results for e in r.events][:1] == ["start"]


def test_lighting_change_sweeps_the_zones_instead_of_chasing_motion(
    footage_dir: Path, detector: Detector,
) -> None:
    frames = list(sampled_frames(footage_dir / INDOOR, stop=3.0))
    analyzer = CameraAnalyzer("lobby", [lobby()], detector, conf=0.5)
    analyse(analyzer, frames)
    dimmed = cv2.convertScaleAbs(frames[-1].bgr(), alpha=0.55)
    result = analyzer.process(Frame.from_bgr("lobby", 99, 3.2, 1e9 + 3.2, dimmed))
    assert result is not None
    assert result.look.motion.global_change and not result.look.motion.boxes
    assert result.look.kind == "sweep" and result.detections == []


def test_frame_line_reports_what_the_detector_looked_at(footage_dir: Path,
                                                         detector: Detector) -> None:
    frames = list(sampled_frames(footage_dir / INDOOR, start=22.0, stop=23.5))
    analyzer = CameraAnalyzer("lobby", [lobby()], detector, conf=0.5)
    lines = [frame_line("lobby", r) for r in analyse(analyzer, frames)]
    assert lines[0]["look"]["kind"] == "sweep"
    assert {"kind", "regions", "motion_ms", "detector_ms", "carried"} <= set(lines[-1]["look"])
    looked = [x for x in lines if x["look"]["regions"]]
    assert all(x["look"]["detector_ms"] > 0 and x["look"]["motion_ms"] > 0 for x in looked)
    region = looked[-1]["look"]["regions"][0]
    assert region["reason"] in {"motion", "track", "sweep", "tile"}
    x1, y1, x2, y2 = region["box"]
    assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 432
    costs = analyzer.costs()
    assert costs["motion"]["frames"] == len(lines) and costs["core"]["frames"] == len(lines)


@pytest.mark.slow
def test_every_frame_analysis_reports_the_boat_while_visible_and_none_on_the_empty_sea(
    footage_dir: Path, detector: Detector,
) -> None:
    water = ZoneSettings(id="water", polygon=[(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)],
                     rules=[PresenceRuleSettings(kind="illegal_fishing", classes=["boat"],
                                             min_dwell_s=2, end_after_s=4)])
    analyzer = CameraAnalyzer("boat", [water], detector, analysis_fps=None, conf=0.5)
    results = analyse(analyzer, list(sampled_frames(footage_dir / BOAT)))
    assert len(results) == 569
    assert all(r.look.kind == "sweep" for r in results)
    visible = [r for r in results if r.frame.t < 8.0]
    with_boat = [r for r in visible if any(d.cls == "boat" for d in r.detections)]
    assert len(with_boat) >= 0.9 * len(visible)
    assert not [r for r in results if r.frame.t > 11.0 and r.detections]
    starts = [e for r in results for e in r.events if e.phase == "start"]
    assert len(starts) == 1 and starts[0].t <= 3.0
