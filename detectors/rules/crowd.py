"""Crowd conditions: gathering, over-density, and a surge or sudden dispersal.

- gathering: at least `min_count` people in the zone for `min_duration_s`;
- density: people per square metre of the zone's real `area_m2` at least `min_per_m2`;
- surge: the crowd's typical speed jumps well above its own recent baseline within seconds.
  Speeds are in object sizes per second (a track's speed over its box size), so people near
  and far from the camera count alike and no calibration is needed. Whether the motion points
  away from the crowd's centre (dispersal: people fleeing) or not (a surge: running, pushing)
  is reported in the event's details.
Counts use the frame's detections (a person counts before a track is confirmed); speeds use
tracks.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from gridwatch.detectors.detection import Detection
from gridwatch.detectors.rules.common import Finding, Sustained, ZoneObservation, count_objects
from gridwatch.settings.rules.crowd import DensitySettings, GatheringSettings, SurgeSettings


class _CountCheck:
    """A people count that must hold for the settings' `min_duration_s`."""

    def __init__(self, s: GatheringSettings | DensitySettings, classes: frozenset[str],
                 min_score: float, tolerance_s: float) -> None:
        self.classes = classes
        self.min_score = min_score
        self._held = Sustained(s.min_duration_s, tolerance_s)

    def people(self, obs: ZoneObservation) -> list[Detection]:
        return [d for d in obs.detections if d.cls in self.classes and d.score >= self.min_score]


class GatheringCheck(_CountCheck):
    name = "gathering"

    def __init__(self, s: GatheringSettings, classes: frozenset[str], min_score: float,
                 tolerance_s: float) -> None:
        super().__init__(s, classes, min_score, tolerance_s)
        self.s = s

    def evaluate(self, obs: ZoneObservation) -> Finding | None:
        people = self.people(obs)
        if not self._held.update(obs.t, len(people) >= self.s.min_count):
            return None
        return Finding(
            objects=count_objects(people), detections=people,
            score=sum(d.score for d in people),
            details={"count": len(people), "held_s": round(self._held.held_for(obs.t), 2)},
            severity=self.s.severity,
        )


class DensityCheck(_CountCheck):
    name = "density"

    def __init__(self, s: DensitySettings, classes: frozenset[str], min_score: float,
                 tolerance_s: float) -> None:
        super().__init__(s, classes, min_score, tolerance_s)
        self.s = s

    def evaluate(self, obs: ZoneObservation) -> Finding | None:
        area = obs.region.spec.area_m2 if obs.region is not None else None
        if area is None:
            return None
        people = self.people(obs)
        per_m2 = len(people) / area
        if not self._held.update(obs.t, per_m2 >= self.s.min_per_m2):
            return None
        return Finding(
            objects=count_objects(people), detections=people,
            score=sum(d.score for d in people),
            details={"count": len(people), "per_m2": round(per_m2, 3), "area_m2": area},
            severity=self.s.severity,
        )


class SurgeCheck:
    """The median speed of the zone's tracks against its own rolling baseline, and the zone
    emptying within seconds.

    A dispersal fast enough empties the zone before enough tracks have a speed: so a drop of
    `emptied_share` of the people from one `within_s` to the next also counts (a crowd leaving
    over minutes loses a few per cent per `within_s`).
    """

    name = "surge"

    def __init__(self, s: SurgeSettings, classes: frozenset[str], min_score: float) -> None:
        self.s = s
        self.classes = classes
        self.min_score = min_score
        self._history: deque[tuple[float, float | None, int]] = deque()  # t, speed, count

    def evaluate(self, obs: ZoneObservation) -> Finding | None:
        s, t = self.s, obs.t
        recent = t - s.within_s
        moving = [tr for tr in obs.tracks
                  if tr.cls in self.classes and tr.speed_sizes_s is not None]
        people = [d for d in obs.detections if d.cls in self.classes and d.score >= self.min_score]
        speed = (float(np.median([tr.speed_sizes_s for tr in moving]))
                 if len(moving) >= s.min_tracks else None)
        self._history.append((t, speed, len(people)))
        while self._history[0][0] < t - s.baseline_s - s.within_s:
            self._history.popleft()
        if self._history[0][0] > recent - s.min_baseline_s:
            return None
        now = [v for when, v, _ in self._history if when >= recent and v is not None]
        before = [v for when, v, _ in self._history if when < recent and v is not None]
        faster = bool(now and before) and _jump(float(np.median(now)), float(np.median(before)),
                                                s)
        was = [n for when, _, n in self._history if recent - s.within_s <= when < recent]
        left = [n for when, _, n in self._history if when >= recent]
        emptied = bool(was) and np.median(was) >= s.min_tracks and (
            np.median(left) <= (1 - s.emptied_share) * np.median(was))
        if not (faster or emptied):
            return None
        outward = outward_share(moving)
        details = {
            "pattern": "dispersal" if emptied or outward >= s.dispersal_share else "surge",
            "speed": _round(np.median(now)) if now else None,
            "baseline": _round(np.median(before)) if before else None,
            "outward_share": round(outward, 3), "tracks": len(moving),
            "count": len(people), "count_before": _round(np.median(was)) if was else None,
        }
        evidence = people or [tr.detection for tr in moving if tr.detection is not None]
        return Finding(objects=count_objects(evidence), detections=evidence,
                       score=sum(d.score for d in evidence), details=details,
                       severity=s.severity)


def _jump(now: float, baseline: float, s: SurgeSettings) -> bool:
    return now >= s.factor * baseline and now - baseline >= s.min_increase


def _round(v: float) -> float:
    return round(float(v), 3)


def outward_share(tracks: list) -> float:
    """Mean cosine between each track's velocity and the direction away from the crowd's
    centre: near 1 when everyone runs outwards, near 0 for a flow in one direction."""
    pts = [(tr.foot, tr.velocity_px_s) for tr in tracks if tr.velocity_px_s is not None]
    if len(pts) < 2:
        return 0.0
    centre = np.mean([p for p, _ in pts], axis=0)
    cosines = []
    for (x, y), (vx, vy) in pts:
        rx, ry = x - centre[0], y - centre[1]
        norm = math.hypot(rx, ry) * math.hypot(vx, vy)
        if norm > 0:
            cosines.append((rx * vx + ry * vy) / norm)
    return float(np.mean(cosines)) if cosines else 0.0
