"""The motion stage on real footage: waves do not count as motion, people do, lighting
changes are global changes and not motion, and the stage records what it costs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridwatch.detectors.motion import MotionDetector
from gridwatch.detectors.zones import Zone
from gridwatch.settings.zones import ZoneSettings
from tests.support.sampled_frames import sampled_frames

BOAT = "fishing_boat_sea_640x360_30fps.mp4"
INDOOR = "indoor_people_walk_768x432_10fps.mp4"
ROAD = "cctv_road_cart_320x240_3fps.mp4"


def watched(polygon: list[tuple[float, float]], width: int, height: int) -> MotionDetector:
    motion = MotionDetector()
    motion.set_zones({"z": Zone(ZoneSettings(id="z", polygon=polygon), width, height).mask()})
    return motion


def run(path: Path, polygon: list[tuple[float, float]], step_s: float, stop: float = 1e9
        ) -> list[tuple[float, list, float, bool]]:
    """(t, boxes, zone activity, global change) per sampled frame."""
    out = []
    motion: MotionDetector | None = None
    for frame in sampled_frames(path, step_s, stop=stop):
        if motion is None:
            motion = watched(polygon, frame.width, frame.height)
        r = motion.update(frame.gray(), frame.t)
        out.append((frame.t, r.boxes, r.zone_activity.get("z", 0.0), r.global_change))
    return out


@pytest.mark.parametrize("step_s", [0.2, 0.0], ids=["5fps", "every-frame"])
def test_waves_on_the_empty_sea_do_not_keep_reporting_motion(footage_dir: Path,
                                                              step_s: float) -> None:
    water = [(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)]
    results = run(footage_dir / BOAT, water, step_s)
    boat = [r for r in results if 0.5 <= r[0] < 8.0]
    empty_sea = [r for r in results if r[0] >= 11.0]
    assert empty_sea and boat
    moving = [r for r in empty_sea if r[1]]
    assert len(moving) <= 0.02 * len(empty_sea), [(t, b) for t, b, _, _ in moving]
    assert max(r[2] for r in empty_sea) < 0.005
    # The boat crossing (with the camera panning after it) is motion on every sampled frame.
    assert all(r[1] for r in boat)


def test_person_walking_in_is_motion_where_they_enter(footage_dir: Path) -> None:
    lobby = [(0.0, 0.2), (1.0, 0.2), (1.0, 1.0), (0.0, 1.0)]
    results = run(footage_dir / INDOOR, lobby, 0.2, stop=24.0)
    # Empty room at the start, and between the first visitor leaving (19.8 s) and the second
    # one's head showing at the bottom edge (22.7 s).
    quiet = [r for r in results if r[0] < 5.8 or 20.4 <= r[0] < 22.6]
    assert quiet and not [r for r in quiet if r[1]]
    arriving = [r for r in results if 22.8 <= r[0] < 24.0]
    assert arriving and all(r[1] for r in arriving)
    first_box = arriving[0][1][0]
    assert first_box[3] >= 420, "the person enters at the bottom edge of the 432 px frame"


def test_person_crossing_low_fps_cctv_road_is_motion_and_the_empty_road_is_not(
    footage_dir: Path,
) -> None:
    road = [(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)]
    results = run(footage_dir / ROAD, road, 0.0)
    assert not [r for r in results if r[0] < 12.5 and r[1]]
    crossing = [r for r in results if r[0] >= 12.6]
    assert len(crossing) >= 10 and all(r[1] for r in crossing)


def test_lighting_change_is_a_global_change_not_motion(footage_dir: Path) -> None:
    lobby = [(0.0, 0.2), (1.0, 0.2), (1.0, 1.0), (0.0, 1.0)]
    frames = list(sampled_frames(footage_dir / INDOOR, 0.2, stop=5.0))
    motion = watched(lobby, frames[0].width, frames[0].height)
    for frame in frames:
        assert not motion.update(frame.gray(), frame.t).boxes
    gray = frames[-1].gray().astype(np.float32)
    t = frames[-1].t
    brighter = np.clip(gray + 35, 0, 255).astype(np.uint8)
    darker = np.clip(gray * 0.6, 0, 255).astype(np.uint8)
    for i, changed in enumerate((brighter, darker, brighter)):
        result = motion.update(changed, t + 0.2 * (i + 1))
        assert not result.boxes, f"lighting change {i} reported as motion"
    assert result.global_change


def test_cost_of_motion_is_recorded_per_camera(footage_dir: Path) -> None:
    frames = list(sampled_frames(footage_dir / BOAT, 0.2, stop=2.0))
    motion = watched([(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)],
                     frames[0].width, frames[0].height)
    results = [motion.update(f.gray(), f.t) for f in frames]
    cost = motion.cost.to_json()
    assert cost["frames"] == len(frames)
    assert 0 < cost["ms_ewma"] < 50 and cost["ms_mean"] > 0
    assert all(r.ms > 0 for r in results)
