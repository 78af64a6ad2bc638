"""The tracker under the service's real timing: sweeps seconds apart, switches between watch
mode (keyframes 1-2 s apart) and active mode (5 fps), timestamps that jitter or restart.

ByteTrack's lost-track budget is in seconds and a track is confirmed on its second match:
with a budget shorter than the gap between analysed frames no track would ever be confirmed,
so the wrapper stretches the budget to the observed gap. The person standing at the indoor
clip's bar table (93-120 s) is the real object here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gridwatch.detectors.detection import Detection
from gridwatch.detectors.tracking import ObjectTracker
from tests.support.tracked_footage import INDOOR, Sample, every, sample, video_frames, yolox

STAY = (94.0, 119.0)


@pytest.fixture(scope="module")
def stay(footage_dir: Path, models_dir: Path) -> list[Sample]:
    return sample(video_frames(footage_dir / INDOOR, start=STAY[0], stop=STAY[1]),
                  every(0.2, *STAY), yolox(models_dir), {"person"})


def ids_over(samples: list[Sample], tracker: ObjectTracker | None = None) -> Counter:
    tracker = tracker or ObjectTracker()
    ids: Counter = Counter()
    for s in samples:
        dets = s.fresh()
        tracker.update(dets, s.t)
        ids.update(d.track for d in dets)
    return ids


def pick(samples: list[Sample], times: list[float]) -> list[Sample]:
    return [s for s in samples if any(abs(s.t - t) < 0.05 for t in times)]


def test_sweeps_five_seconds_apart_still_confirm_and_keep_a_track(stay) -> None:
    sweeps = pick(stay, every(5.0, *STAY))
    assert len(sweeps) == 5
    ids = ids_over(sweeps)
    assert ids[None] == 1, "only the first sighting waits for confirmation"
    assert len(ids) == 2, f"one person, one id: {dict(ids)}"


def test_switching_between_watch_and_active_mode_keeps_the_id(stay) -> None:
    times = [*every(2.0, 94.0, 100.0), *every(0.2, 100.0, 106.0), *every(1.4, 106.0, 119.0)]
    ids = ids_over(pick(stay, times))
    assert len([i for i in ids if i is not None]) == 1, dict(ids)


def test_jittering_or_restarting_media_time_is_handled() -> None:
    tracker = ObjectTracker()
    box = (100.0, 100.0, 140.0, 200.0)
    seen = [tracker.update([Detection("person", 0, 0.9, box)], t) for t in (10.0, 10.2, 10.4)]
    first_id = seen[-1][0].id
    # A PTS a hair back (B-frames) is taken as a new frame, not dropped.
    again = tracker.update([Detection("person", 0, 0.9, box)], 10.39)
    assert [tr.id for tr in again] == [first_id]
    # Time back by minutes: a restarted stream, where old tracks mean nothing.
    restart = tracker.update([Detection("person", 0, 0.9, box)], 0.0)
    assert restart == [] and tracker.tracks == []
