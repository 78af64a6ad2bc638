"""The presets on real footage through the real detector and tracker: boats fishing in the
ban season, people standing on a bank, parked heavy vehicles, crowds gathering, dense and
surging."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from gridwatch.detectors.events import Event
from gridwatch.detectors.rules import build_rule
from gridwatch.detectors.tracking import ObjectTracker
from gridwatch.settings.rules import RuleSettings
from tests.support.tracked_footage import (
    BOAT,
    WHOLE,
    Sample,
    every,
    hall_at_5fps,
    keyframe_times,
    observations,
    pets_at_5fps,
    sample,
    video_frames,
    yolox,
    zone,
)

WATER = [(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)]
GROUP = [(0.15, 0.38), (0.3, 0.38), (0.3, 0.6), (0.15, 0.6)]  # hall: people standing together
CONCOURSE = [(0.45, 0.3), (1.0, 0.3), (1.0, 1.0), (0.45, 1.0)]  # hall: people walking
CAR_PARK = [(0.0, 0.45), (1.0, 0.45), (1.0, 0.7), (0.0, 0.7)]  # PETS: the row of parked cars


@pytest.fixture(scope="module")
def detector(models_dir: Path):
    return yolox(models_dir)


@pytest.fixture(scope="module")
def boat_active(footage_dir: Path, detector) -> list[Sample]:
    return sample(video_frames(footage_dir / BOAT), every(0.2, 0, 19), detector, {"boat", "person"})


@pytest.fixture(scope="module")
def hall(footage_dir: Path, detector) -> list[Sample]:
    return hall_at_5fps(footage_dir, detector)


@pytest.fixture(scope="module")
def pets(footage_dir: Path, detector) -> list[Sample]:
    return pets_at_5fps(footage_dir, detector)


def run(rule: dict, samples: Sequence[Sample], polygon=WHOLE, **zone_spec) -> list[Event]:
    h, w = samples[0].image.shape[:2]
    z = zone(polygon, w, h, "z", **zone_spec)
    built = build_rule(TypeAdapter(RuleSettings).validate_python(rule))
    events = []
    for _, _, per_zone in observations(samples, [z], ObjectTracker([z])):
        if (event := built.observe(per_zone["z"])) is not None:
            events.append(event)
    last = samples[-1].t
    end = built.finish(last, last, "cam", "z")
    return events + ([end] if end else [])


def starts(events: list[Event]) -> list[Event]:
    return [e for e in events if e.phase == "start"]


BOATS_ONLY = {"preset": "illegal_fishing", "people": None, "boats": {"min_dwell_s": 2},
              "end_after_s": 4, "windows": [{"dates": "03-01..06-30", "timezone": "UTC"}]}


def test_a_boat_in_the_ban_season_opens_within_three_seconds(boat_active) -> None:
    events = run(BOATS_ONLY, boat_active, WATER)
    [start] = starts(events)
    assert start.kind == "illegal_fishing" and start.severity == "high"
    assert start.t <= 3.0, "the boat is in view from the first frame"
    assert start.objects == {"boat": 1}
    end = next(e for e in events if e.phase == "end")
    assert 9.0 <= end.t <= 14.0, "the boat leaves at ~9 s; then only waves"


def test_the_same_boat_outside_the_season_raises_nothing(boat_active) -> None:
    summer = {**BOATS_ONLY, "windows": [{"dates": "07-01..09-30"}]}
    assert not run(summer, boat_active, WATER)


def test_a_boat_seen_only_on_keyframes_still_opens_in_time(footage_dir: Path, detector) -> None:
    keyframes = sample(video_frames(footage_dir / BOAT), keyframe_times(0, 19), detector,
                       {"boat", "person"})
    [start] = starts(run(BOATS_ONLY, keyframes, WATER))
    assert start.t <= 4.5


def test_people_standing_on_the_bank_are_fishing_walkers_are_not(hall) -> None:
    standing = {"preset": "illegal_fishing", "boats": None, "people": {"min_dwell_s": 6}}
    [start] = starts(run(standing, hall, GROUP))
    assert start.objects.get("person", 0) >= 1
    tracks = start.details["conditions"]["people"]["tracks"]
    assert all(tr["stationary"] and tr["dwell_s"] >= 6 for tr in tracks)
    assert not starts(run(standing, hall, CONCOURSE))


def test_parked_heavy_vehicles_are_sand_digging_after_their_dwell(pets) -> None:
    """PETS has no trucks: its parked cars stand in as the machines, by configuration."""
    parked = {"preset": "sand_digging", "ground": None,
              "machines": {"classes": ["car"], "min_dwell_s": 5, "stationary": True}}
    [start] = starts(run(parked, pets, CAR_PARK))
    assert start.kind == "sand_digging"
    assert 5.0 <= start.t <= 7.0
    assert start.objects["car"] >= 3


def test_a_crowd_gathers_in_the_hall_and_on_the_road(hall, pets) -> None:
    gathering = {"type": "crowd", "gathering": {"min_count": 15, "min_duration_s": 3}}
    [start] = starts(run(gathering, hall))
    assert 3.0 <= start.t <= 4.0 and start.objects["person"] >= 15
    assert not starts(run({"type": "crowd", "gathering": {"min_count": 60}}, hall))
    group = {"type": "crowd", "gathering": {"min_count": 5, "min_duration_s": 2}}
    assert starts(run(group, pets))
    assert not starts(run({**group, "gathering": {"min_count": 10}}, pets))


def test_over_density_uses_the_zone_area(hall) -> None:
    counts = sorted(sum(d.cls == "person" for d in s.detections) for s in hall)
    typical = counts[len(counts) // 2]
    dense = {"type": "crowd", "density": {"min_per_m2": 0.8 * typical / 400,
                                          "min_duration_s": 2}}
    [start] = starts(run(dense, hall, area_m2=400))
    assert start.severity == "high"
    per_m2 = start.details["conditions"]["density"]["per_m2"]
    assert per_m2 == pytest.approx(start.objects["person"] / 400, rel=0.01)
    assert not starts(run(dense, hall, area_m2=800))


def baseline_walk(hall: list[Sample]) -> list[Sample]:
    """The hall clip forward then backward: 27 s of normal walking."""
    back = [Sample(hall[-1].t + 0.2 + (hall[-1].t - s.t), s.image, s.detections)
            for s in reversed(hall)]
    return hall + back


SURGE = {"type": "crowd", "end_after_s": 2,
         "surge": {"factor": 2.5, "within_s": 2, "min_baseline_s": 8}}


def test_a_sudden_speed_up_is_a_surge(hall) -> None:
    """After the baseline, the clip forward again keeping only every 4th frame while media
    time runs at the normal rate: everyone suddenly moves four times as fast, as in a surge.
    The detections are the real ones of those frames; only the clock is compressed."""
    normal = baseline_walk(hall)
    t0 = normal[-1].t + 0.2
    fast = [Sample(t0 + 0.2 * i, s.image, s.detections) for i, s in enumerate(hall[::4])]
    [start] = starts(run(SURGE, normal + fast))
    assert t0 <= start.t <= t0 + 3.0, f"surge seen {start.t - t0:.1f} s after it began"
    found = start.details["conditions"]["surge"]
    assert found["pattern"] == "surge"
    assert found["speed"] >= 2.5 * found["baseline"]
    assert not starts(run(SURGE, normal)), "normal walking, forward and back, is no surge"


def test_people_running_away_from_the_centre_is_a_dispersal(hall) -> None:
    """After the baseline, every detected person of the real frames is moved away from the
    hall's centre at 150 px/s (1.5 body sizes per second: running) from their real place:
    the crowd scatters and leaves the picture within seconds."""
    normal = baseline_walk(hall)
    t0 = normal[-1].t + 0.2
    cx, cy = 640.0, 360.0
    scatter = []
    for i, s in enumerate(hall[:20]):
        moved = []
        for d in s.fresh():
            x1, y1, x2, y2 = d.box
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            k = 150.0 * 0.2 * i / max(math.hypot(mx - cx, my - cy), 1.0)
            dx, dy = (mx - cx) * k, (my - cy) * k
            if 0 <= mx + dx <= 1280 and 0 <= my + dy <= 720:
                d.box = (x1 + dx, y1 + dy, x2 + dx, y2 + dy)
                moved.append(d)
        scatter.append(Sample(t0 + 0.2 * i, s.image, moved))
    [start] = starts(run(SURGE, normal + scatter))
    assert t0 <= start.t <= t0 + 3.0
    found = start.details["conditions"]["surge"]
    assert found["pattern"] == "dispersal"
    assert found["outward_share"] >= 0.5
