"""Per-camera analysis: frame -> detections -> zone contents -> rule events.

One `CameraAnalyzer` per camera keeps the zone geometry (bound lazily to the first frame's
size) and the rule state machines. It decides which frames are analysed (a media-time rate,
so a file analysed faster than real time is sampled like the live camera would be).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from detectors.backends.base import Detector
from detectors.detection import Detection
from detectors.events import Event
from detectors.rules import Rule, ZoneObservation, build_rule
from detectors.tracking import ObjectTracker, TrackerSettings
from detectors.zones import Zone, ZoneSpec
from ingest.frame import Frame

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FrameResult:
    """Everything the core concluded about one analysed frame."""

    frame: Frame
    detections: list[Detection]
    zones: dict[str, dict[str, int]]
    events: list[Event] = field(default_factory=list)


class CameraAnalyzer:
    """Runs the detection core for one camera.

    `analysis_fps=None` analyses every frame handed in (accuracy work); otherwise frames
    closer than 1/analysis_fps in media time to the last analysed one are skipped cheaply.
    """

    def __init__(
        self,
        camera_id: str,
        zones: Sequence[ZoneSpec],
        detector: Detector,
        *,
        analysis_fps: float | None = 5.0,
        conf: float = 0.3,
    ) -> None:
        self.camera_id = camera_id
        self.zone_specs = list(zones)
        self.detector = detector
        self.analysis_fps = analysis_fps
        self.conf = conf
        self._zones: list[Zone] = []
        self._size: tuple[int, int] | None = None
        self.tracker = ObjectTracker(settings=TrackerSettings(frame_rate=analysis_fps or 25.0))
        self._rules: dict[str, list[Rule]] = {
            z.id: [build_rule(r) for r in z.rules] for z in self.zone_specs
        }
        self._classes = self._wanted_classes()
        self._last_t: float | None = None
        self._last_wall = 0.0
        self.frames_seen = 0
        self.frames_analysed = 0

    def _wanted_classes(self) -> set[int] | None:
        """Restrict the detector to classes some rule asks for (None: report everything)."""
        wanted = {c for rules in self._rules.values() for r in rules for c in r.classes}
        if not wanted:
            return None
        names = list(self.detector.names)
        return {names.index(c) for c in wanted if c in names}

    def _bind(self, frame: Frame) -> None:
        if self._size != (frame.width, frame.height):
            self._size = (frame.width, frame.height)
            self._zones = [Zone(z, frame.width, frame.height) for z in self.zone_specs]
            self.tracker.set_zones(self._zones)

    def due(self, frame: Frame) -> bool:
        if self.analysis_fps is None or self._last_t is None:
            return True
        return frame.t - self._last_t >= (1.0 / self.analysis_fps) - 1e-6

    def process(self, frame: Frame) -> FrameResult | None:
        """Analyse `frame` if it is due; None when the schedule skips it."""
        self.frames_seen += 1
        if not self.due(frame):
            return None
        self._last_t = frame.t
        self._last_wall = frame.wall
        self.frames_analysed += 1
        self._bind(frame)
        detections = self.detector.detect(frame.bgr(), conf=self.conf, classes=self._classes)
        self.tracker.update(detections, frame.t)
        result = FrameResult(frame, detections, {})
        for zone in self._zones:
            inside = [d for d in detections if zone.contains(d.foot)]
            counts: dict[str, int] = {}
            for d in inside:
                counts[d.cls] = counts.get(d.cls, 0) + 1
            result.zones[zone.id] = counts
            details = {"polygon": [list(p) for p in zone.spec.polygon],
                       "zone_name": zone.spec.name or zone.id}
            obs = ZoneObservation(self.camera_id, zone.id, frame.t, frame.wall, inside, frame,
                                  details, self.tracker.in_zone(zone.id), zone)
            for rule in self._rules[zone.id]:
                event = rule.observe(obs)
                if event is not None:
                    result.events.append(event)
        return result

    def finish(self) -> list[Event]:
        """End every open condition (end of a file, camera removed, shutdown)."""
        t = self._last_t or 0.0
        events = []
        for zone_id, rules in self._rules.items():
            for rule in rules:
                event = rule.finish(t, self._last_wall, self.camera_id, zone_id)
                if event is not None:
                    events.append(event)
        return events
