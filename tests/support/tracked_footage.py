"""Real clips through the real detector, sampled like the service samples them, for the
tracking, rule and preset tests.

Frames are given media times from their index and the clip's frame rate: the hall clip's
container timestamps go backwards (B-frames in AVI), and the PETS frames have none.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.detection import Detection
from gridwatch.detectors.rules import ZoneObservation
from gridwatch.detectors.tracking import ObjectTracker, Track
from gridwatch.detectors.zones import Zone
from gridwatch.ingest.frame import Frame
from gridwatch.settings.zones import ZoneSettings

# 2026-05-15 12:00:00 UTC (inside a 03-01..06-30 season): wall = BASE_WALL + t in these tests.
BASE_WALL = 1_778_846_400.0
HALL = "crowd_hall_topdown_1280x720.avi"
HALL_FPS = 25.0
PETS = "pets2001_ds3_cam1_550_799"
PETS_FPS = 25.0
BOAT = "fishing_boat_sea_640x360_30fps.mp4"
INDOOR = "indoor_people_walk_768x432_10fps.mp4"
WHOLE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


@dataclass(slots=True)
class Sample:
    """One analysed frame: its image, media time and the detector's output."""

    t: float
    image: np.ndarray
    detections: list[Detection]

    def frame(self, camera: str = "cam", index: int = 0) -> Frame:
        return Frame.from_bgr(camera, index, self.t, BASE_WALL + self.t, self.image)

    def fresh(self) -> list[Detection]:
        """Copies, so that each tracker run fills its own `track` ids."""
        return [copy.copy(d) for d in self.detections]


def yolox(models_dir: Path) -> Detector:
    return create_detector("yolox_nano_coco_416", model_dir=models_dir, conf=0.25)


def video_frames(path: Path, fps: float | None = None, start: float = 0.0, stop: float = 1e9,
                 ) -> Iterator[tuple[float, np.ndarray]]:
    """(media time, BGR) of the frames from `start` to `stop` s; `fps` numbers frames
    instead of trusting PTS (then from the first frame: no seeking)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if start > 0 and fps is None:
            container.seek(int(start / stream.time_base), stream=stream)
        for i, frame in enumerate(container.decode(stream)):
            t = i / fps if fps else float(frame.time or 0.0)
            if t > stop:
                return
            if t >= start:
                yield t, frame.to_ndarray(format="bgr24")


def folder_frames(folder: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    for i, path in enumerate(sorted(folder.glob("*.jpg"))):
        yield i / fps, cv2.imread(str(path))


def sample(frames: Iterable[tuple[float, np.ndarray]], times: Sequence[float],
           detector: Detector, classes: set[str] | None = None) -> list[Sample]:
    """The first frame at or after each wanted time, with its detections."""
    wanted = list(times)
    out: list[Sample] = []
    for t, image in frames:
        if not wanted:
            break
        if t + 1e-6 < wanted[0]:
            continue
        while wanted and wanted[0] <= t + 1e-6:
            wanted.pop(0)
        dets = detector.detect(image)
        if classes is not None:
            dets = [d for d in dets if d.cls in classes]
        out.append(Sample(t, image, dets))
    return out


def hall_at_5fps(footage_dir: Path, detector: Detector) -> list[Sample]:
    """The hall crowd (13.6 s, ~25 fps) at 5 fps, people only."""
    return sample(video_frames(footage_dir / HALL, HALL_FPS), every(0.2, 0, 13.6), detector,
                  {"person"})


def pets_at_5fps(footage_dir: Path, detector: Detector,
                 classes: set[str] | None = None) -> list[Sample]:
    """PETS 2001 (10 s at 25 fps) at 5 fps: walkers, a cyclist, parked cars."""
    return sample(folder_frames(footage_dir / PETS, PETS_FPS), every(0.2, 0, 10), detector,
                  classes)


def every(step: float, start: float, stop: float) -> list[float]:
    return list(np.arange(start, stop, step))


def keyframe_times(
    start: float, stop: float, gaps: Sequence[float] = (1.0, 2.0, 1.5),
) -> list[float]:
    """Irregular 1-2 s gaps, as watch mode analyses keyframes."""
    times, t, i = [], start, 0
    while t < stop:
        times.append(t)
        t += gaps[i % len(gaps)]
        i += 1
    return times


def zone(polygon: Sequence[tuple[float, float]], width: int, height: int,
         zone_id: str = "z", **spec: object) -> Zone:
    return Zone(ZoneSettings(id=zone_id, polygon=list(polygon), **spec), width, height)


Observed = tuple[Sample, list[Track], dict[str, ZoneObservation]]


def observations(samples: Sequence[Sample], zones: Sequence[Zone],
                 tracker: ObjectTracker | None = None, camera: str = "cam") -> Iterator[Observed]:
    """Track each sample and build what the pipeline hands each zone's rules."""
    tracker = tracker or ObjectTracker(zones)
    for i, s in enumerate(samples):
        dets = s.fresh()
        seen = tracker.update(dets, s.t)
        frame = s.frame(camera, i)
        per_zone = {
            z.id: ZoneObservation(
                camera, z.id, s.t, BASE_WALL + s.t, [d for d in dets if z.contains(d.foot)],
                frame, {"polygon": [list(p) for p in z.spec.polygon], "zone_name": z.id},
                tracker.in_zone(z.id), z,
            )
            for z in zones
        }
        yield s, seen, per_zone
