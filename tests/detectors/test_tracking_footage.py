"""The tracker on real footage through the real detector: identities stay with the people,
stationarity tells a standing person from a walker, and dwell accumulates the same whether
frames come at 5 fps (active mode) or 1-2 s apart (watch mode's keyframes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gridwatch.detectors.tracking import ObjectTracker
from tests.support.tracked_footage import (
    INDOOR,
    WHOLE,
    Sample,
    every,
    hall_at_5fps,
    keyframe_times,
    pets_at_5fps,
    sample,
    video_frames,
    yolox,
    zone,
)

# The indoor clip: one person stands at the bar table from 93.2 s to 119.8 s (detected at
# 0.5-0.6 in every frame of that stay), nobody else in view.
STAY = (92.0, 121.0)
TABLE = [(0.2, 0.4), (0.9, 0.4), (0.9, 1.0), (0.2, 1.0)]
# A standing group in the hall, left of centre (~5 people, one or two detected at 416).
GROUP = [(0.15, 0.38), (0.3, 0.38), (0.3, 0.6), (0.15, 0.6)]


@pytest.fixture(scope="module")
def detector(models_dir: Path):
    return yolox(models_dir)


@pytest.fixture(scope="module")
def pets(footage_dir: Path, detector) -> list[Sample]:
    return pets_at_5fps(footage_dir, detector, {"person"})


@pytest.fixture(scope="module")
def hall(footage_dir: Path, detector) -> list[Sample]:
    return hall_at_5fps(footage_dir, detector)


@pytest.fixture(scope="module")
def indoor(footage_dir: Path, detector) -> dict[str, list[Sample]]:
    active = sample(video_frames(footage_dir / INDOOR, start=STAY[0], stop=STAY[1]),
                    every(0.2, *STAY), detector, {"person"})
    # Watch mode's keyframes, 1-2 s apart, are frames the active run analysed too.
    keyframes = keyframe_times(*STAY, gaps=(1.0, 2.0, 1.4))
    watch = [s for s in active if any(abs(s.t - k) < 0.05 for k in keyframes)]
    assert len(watch) == len(keyframes)
    return {"active": active, "watch": watch}


def run(samples: list[Sample], zones=()) -> tuple[ObjectTracker, list[list]]:
    tracker = ObjectTracker(zones)
    per_frame = []
    for s in samples:
        dets = s.fresh()
        tracker.update(dets, s.t)
        per_frame.append(dets)
    return tracker, per_frame


def test_pets_walkers_keep_their_ids_across_frames(pets: list[Sample]) -> None:
    _, per_frame = run(pets)
    for dets in per_frame:
        ids = [d.track for d in dets if d.track is not None]
        assert len(ids) == len(set(ids)), "two people share an id in one frame"
    # Two people in view from the start walk apart from everyone for ~6 s (30 frames at
    # 5 fps); a third walks into the group by the cars, where the detector merges people.
    apart = {d.track for d in per_frame[1] if d.track is not None and d.box[0] < 250}
    assert len(apart) == 2
    window = per_frame[1:31]
    for track_id in apart:
        seen = sum(any(d.track == track_id for d in dets) for dets in window)
        assert seen >= 0.8 * len(window), f"id {track_id} held for only {seen}/{len(window)}"
    tracked = sum(d.track is not None for dets in per_frame for d in dets)
    assert tracked >= 0.85 * sum(len(dets) for dets in per_frame)


def test_a_person_keeps_one_id_at_keyframe_gaps(indoor: dict[str, list[Sample]]) -> None:
    _, per_frame = run(indoor["watch"])
    ids = Counter(d.track for dets in per_frame for d in dets)
    ids.pop(None, None)
    hits = ids.most_common(1)[0][1]
    detected = sum(len(dets) > 0 for dets in per_frame)
    assert hits >= detected - 1, f"one stay split into ids {dict(ids)}"


def test_dwell_accumulates_the_same_in_watch_and_active_mode(
    indoor: dict[str, list[Sample]],
) -> None:
    dwell = {}
    for mode, samples in indoor.items():
        table = zone(TABLE, samples[0].image.shape[1], samples[0].image.shape[0], "table")
        tracker, _ = run(samples, [table])
        longest = max(tracker.tracks, key=lambda tr: tr.dwell("table"))
        dwell[mode] = longest.dwell("table")
    assert dwell["active"] >= 24.0, dwell
    # Watch mode sees the stay 1-2 s late at each end at worst.
    assert abs(dwell["watch"] - dwell["active"]) <= 3.0, dwell


def test_standing_person_is_stationary_and_walkers_are_not(hall: list[Sample]) -> None:
    w, h = hall[0].image.shape[1], hall[0].image.shape[0]
    group = zone(GROUP, w, h, "group")
    tracker, _ = run(hall, [group, zone(WHOLE, w, h, "hall")])
    known = [tr for tr in tracker.tracks if tr.stationary is not None and tr.age >= 8]
    standing = [tr for tr in known if tr.inside("group")]
    walkers = [tr for tr in known if not tr.inside("group")]
    assert standing and all(tr.stationary for tr in standing)
    assert len(walkers) >= 10
    moving = [tr for tr in walkers if not tr.stationary]
    assert len(moving) >= 0.8 * len(walkers), [(tr.id, tr.box) for tr in walkers
                                               if tr.stationary]
    assert min(tr.speed_sizes_s for tr in moving) > max(tr.speed_sizes_s for tr in standing)


def test_speed_in_metres_per_second_where_the_zone_is_calibrated(hall: list[Sample]) -> None:
    w, h = hall[0].image.shape[1], hall[0].image.shape[0]
    # Top-down hall: ~2 cm per pixel (a person's shoulders span ~25 px at 1280x720).
    calibrated = zone(WHOLE, w, h, "floor", calibration={"metres_per_pixel": 0.02})
    tracker, _ = run(hall, [calibrated])
    walkers = [tr for tr in tracker.tracks if tr.stationary is False and tr.speed_mps]
    assert len(walkers) >= 10
    for tr in walkers:
        assert tr.speed_mps == pytest.approx(tr.speed_px_s * 0.02, rel=0.02)
    median = sorted(tr.speed_mps for tr in walkers)[len(walkers) // 2]
    assert 0.3 < median < 2.5, "walking speed"
    plain, _ = run(hall[:10], [zone(WHOLE, w, h, "floor")])
    assert all(tr.speed_mps is None for tr in plain.tracks)
