"""Per-camera analysis: frame -> motion -> where to look -> detector -> merge -> zones -> rules.

One `CameraAnalyzer` per camera keeps the zone geometry (bound lazily to the first frame's
size), the motion background, the look planner (sweep times, known objects) and the rule state
machines. It decides which frames are analysed (a media-time rate, so a file analysed faster
than real time is sampled like the live camera would be) and, per analysed frame, what the
detector sees: nothing when nothing moves and nothing is known, crops around motion and known
objects, or sweeps of whole zones (periodic, and on every frame in `every_frame` mode, where
accuracy matters more than cost).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.costs import RunningMs
from gridwatch.detectors.detection import Detection, box_iou
from gridwatch.detectors.events import Event
from gridwatch.detectors.membership import ZoneMembership
from gridwatch.detectors.merge import drop_border_slivers, merge_region_detections
from gridwatch.detectors.motion import MotionDetector, MotionResult, MotionSettings
from gridwatch.detectors.planner import LookKind, LookPlanner, LookSettings
from gridwatch.detectors.regions import Region
from gridwatch.detectors.rules import Rule, ZoneObservation, build_rule
from gridwatch.detectors.tracking import ObjectTracker, TrackerSettings
from gridwatch.detectors.zones import Zone
from gridwatch.ingest.frame import Frame
from gridwatch.settings.model import ModelSettings
from gridwatch.settings.zones import ZoneSettings

#: Overlap with a known object's last box that lets a detection use the lower `keep_conf`.
KEEP_IOU = 0.25


@dataclass(slots=True)
class LookReport:
    """What the core did for one frame, for the API and the analyze output."""

    kind: LookKind
    regions: list[Region]
    motion: MotionResult
    detector_ms: float
    carried: int

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "regions": [r.to_json() for r in self.regions],
            "motion_ms": round(self.motion.ms, 3),
            "motion_boxes": len(self.motion.boxes),
            "global_change": self.motion.global_change,
            "detector_ms": round(self.detector_ms, 3),
            "carried": self.carried,
        }


@dataclass(slots=True)
class FrameResult:
    """Everything the core concluded about one analysed frame."""

    frame: Frame
    detections: list[Detection]
    zones: dict[str, dict[str, int]]
    events: list[Event] = field(default_factory=list)
    look: LookReport | None = None


@dataclass(slots=True)
class CoreCost:
    """Running cost of the detection core of one camera: ms per analysed frame (all of it, and
    the detector part on frames that reach it), and how many frames reach the detector."""

    core: RunningMs = field(default_factory=RunningMs)
    detector: RunningMs = field(default_factory=RunningMs)
    inferences: int = 0

    def add(self, inferences: int, detector_ms: float, core_ms: float) -> None:
        self.core.add(core_ms)
        if inferences:
            self.detector.add(detector_ms)
            self.inferences += inferences

    def to_json(self) -> dict:
        frames = self.core.count
        return {
            "frames": frames,
            "detector_frames": self.detector.count,
            "detector_share": round(self.detector.count / frames, 4) if frames else None,
            "inferences": self.inferences,
            "core": self.core.to_json(),
            "detector": self.detector.to_json(),
        }


class AnalysisRate:
    """Which frames are analysed: one at least 1/fps of media time after the last one taken,
    or every frame with `fps=None`. Media time, not wall time, so that a file read faster than
    real time is sampled as the live camera would be. The camera worker's reader asks the same
    rule before it hands a frame over, so the two never disagree about a frame.
    """

    def __init__(self, fps: float | None) -> None:
        self.fps = fps
        self._last_t: float | None = None

    def due(self, t: float) -> bool:
        if self.fps is None or self._last_t is None:
            return True
        return t - self._last_t >= (1.0 / self.fps) - 1e-6

    def take(self, t: float) -> bool:
        """Whether the frame at media time `t` is due; a due frame is recorded as taken."""
        if not self.due(t):
            return False
        self._last_t = t
        return True


class CameraAnalyzer:
    """Runs the detection core for one camera.

    `analysis_fps=None` analyses every frame handed in and sweeps every zone on each (accuracy
    work: `gridwatch analyze --every-frame`); otherwise frames closer than 1/analysis_fps in
    media time to the last analysed one are skipped cheaply and the planner gates the detector.
    """

    def __init__(
        self,
        camera_id: str,
        zones: Sequence[ZoneSettings],
        detector: Detector,
        *,
        analysis_fps: float | None = 5.0,
        conf: float = 0.3,
        keep_conf: float = 0.3,
        look: LookSettings | None = None,
        motion: MotionSettings | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.zone_specs = list(zones)
        self.detector = detector
        self.analysis_fps = analysis_fps
        self.rate = AnalysisRate(analysis_fps)
        self.conf = conf
        self.keep_conf = keep_conf
        self.look_settings = look or LookSettings()
        self.motion = MotionDetector(motion)
        self.cost = CoreCost()
        self._zones: list[Zone] = []
        # What every event of a zone carries for its evidence; rules copy it when they emit.
        self._details = {z.id: {"polygon": [list(p) for p in z.polygon],
                                "zone_name": z.name or z.id} for z in self.zone_specs}
        self._planner: LookPlanner | None = None
        self._size: tuple[int, int] | None = None
        self.tracker = ObjectTracker(settings=TrackerSettings(frame_rate=analysis_fps or 25.0))
        self._rules: dict[str, list[Rule]] = {
            z.id: [build_rule(r) for r in z.rules] for z in self.zone_specs
        }
        self._classes = self._wanted_classes()
        self._last_t: float | None = None
        self._last_wall = 0.0
        self._last_activity_t = -float("inf")
        self.zone_activity: dict[str, float] = {}
        self.frames_analysed = 0

    def _wanted_classes(self) -> set[int] | None:
        """Restrict the detector to classes some rule asks for (None: report everything)."""
        wanted = {c for rules in self._rules.values() for r in rules for c in r.classes}
        if not wanted:
            return None
        names = list(self.detector.names)
        return {names.index(c) for c in wanted if c in names}

    def _bind(self, frame: Frame) -> LookPlanner:
        if self._planner is None or self._size != (frame.width, frame.height):
            self._size = (frame.width, frame.height)
            self._zones = [Zone(z, frame.width, frame.height) for z in self.zone_specs]
            self.tracker.set_zones(self._zones)
            watched = self._zones or [Zone(_WHOLE_FRAME, frame.width, frame.height)]
            self._planner = LookPlanner(watched, self.detector.input_size, self.look_settings)
            self.motion.set_zones({z.id: z.mask() for z in watched})
        return self._planner

    @property
    def every_frame(self) -> bool:
        return self.analysis_fps is None

    @property
    def wants_active_mode(self) -> bool:
        """Something is happening in a zone: motion within the last `active_hold_s`, or an
        object the detector reported is still known. Ingest uses this to switch from
        keyframes only (watch) to decoding every frame (active)."""
        if self._planner is not None and self._planner.known:
            return True
        return (self._last_t or 0.0) - self._last_activity_t < self.look_settings.active_hold_s

    def costs(self) -> dict:
        """Cost of the core for this camera, for the API."""
        return {"motion": self.motion.cost.to_json(), "core": self.cost.to_json()}

    def process(self, frame: Frame) -> FrameResult | None:
        """Analyse `frame` if it is due; None when the schedule skips it."""
        if not self.rate.take(frame.t):
            return None
        start = time.perf_counter()
        self._last_t = frame.t
        self._last_wall = frame.wall
        self.frames_analysed += 1
        planner = self._bind(frame)
        motion = self.motion.update(frame.gray(), frame.t)
        self.zone_activity = motion.zone_activity
        if motion.boxes:
            self._last_activity_t = frame.t
        plan = planner.plan(frame.t, motion, every_frame=self.every_frame)
        found, detector_ms = self._detect(frame, plan.regions)
        detections = planner.remember(frame.t, plan.regions, found)
        membership = ZoneMembership.of(self._zones, detections)
        self.tracker.update(detections, frame.t, membership)
        look = LookReport(plan.kind, plan.regions, motion, detector_ms,
                          len(detections) - len(found))
        result = FrameResult(frame, detections, {}, look=look)
        self._observe_zones(frame, detections, membership, result)
        self.cost.add(len(plan.regions), detector_ms, (time.perf_counter() - start) * 1000)
        return result

    def _detect(self, frame: Frame, regions: list[Region]) -> tuple[list[Detection], float]:
        """Run the detector on each region and merge into one list in source pixels."""
        if not regions:
            return [], 0.0
        start = time.perf_counter()
        image = frame.bgr()
        batches = self.detector.detect_batch([r.crop(image) for r in regions],
                                             conf=min(self.conf, self.keep_conf),
                                             classes=self._classes)
        per_region = [(r, [_shifted(d, r.box[0], r.box[1]) for d in dets])
                      for r, dets in zip(regions, batches, strict=True)]
        merged = merge_region_detections(per_region, frame.width, frame.height)
        found = self._confident(drop_border_slivers(merged, frame.width))
        return found, (time.perf_counter() - start) * 1000

    def _confident(self, detections: list[Detection]) -> list[Detection]:
        """Score hysteresis, as ByteTrack does it: a new object needs `conf`; a known object
        that no confident detection accounts for may be re-confirmed by its best-overlapping
        detection down to `keep_conf`, so an object that turns away, shrinks into the distance
        or leaves the frame is not lost to a score wavering around `conf`. One detection per
        known object: the model's own duplicates and fragments stay below the line."""
        sure = [d for d in detections if d.score >= self.conf]
        if self._planner is None or self.keep_conf >= self.conf:
            return sure
        open_known = [k.det for k in self._planner.known
                      if not any(_same_object(k.det, d) for d in sure)]
        kept = list(sure)
        for d in sorted((d for d in detections if d.score < self.conf), key=lambda d: -d.score):
            best = max(open_known, key=lambda k: box_iou(k.box, d.box) if k.cls_id == d.cls_id
                       else 0.0, default=None)
            if best is not None and _same_object(best, d):
                kept.append(d)
                open_known.remove(best)
        return kept

    def _observe_zones(self, frame: Frame, detections: list[Detection],
                       membership: ZoneMembership, result: FrameResult) -> None:
        for zone in self._zones:
            inside = membership.detections_in(zone.id, detections)
            counts: dict[str, int] = {}
            for d in inside:
                counts[d.cls] = counts.get(d.cls, 0) + 1
            result.zones[zone.id] = counts
            obs = ZoneObservation(self.camera_id, zone.id, frame.t, frame.wall, inside, frame,
                                  self._details[zone.id], self.tracker.in_zone(zone.id), zone)
            for rule in self._rules[zone.id]:
                event = rule.observe(obs)
                if event is not None:
                    result.events.append(event)

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


def analyzer_from_settings(
    camera_id: str, zones: Sequence[ZoneSettings], model: ModelSettings, detector: Detector,
    *, analysis_fps: float | None,
) -> CameraAnalyzer:
    """The detection core as the configuration describes it. `gridwatch analyze` and
    `gridwatch evaluate` both build their analyzer here, so what the harness measures is the
    pipeline a deployment runs (tiles, crops, merge, thresholds)."""
    return CameraAnalyzer(camera_id, zones, detector, analysis_fps=analysis_fps, conf=model.conf)


_WHOLE_FRAME = ZoneSettings(id="frame", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])


def _same_object(a: Detection, b: Detection) -> bool:
    return a.cls_id == b.cls_id and box_iou(a.box, b.box) >= KEEP_IOU


def _shifted(d: Detection, dx: int, dy: int) -> Detection:
    x1, y1, x2, y2 = d.box
    return Detection(d.cls, d.cls_id, d.score, (x1 + dx, y1 + dy, x2 + dx, y2 + dy), d.track)
