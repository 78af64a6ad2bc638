"""Presence: enough tracked objects of some classes in the zone, each there long enough.

Dwell is per track (how long this boat has been in the zone), not "something has been in
the zone": two people walking through one after the other never make a 5-minute dwell.
`stationary` keeps only objects that stay put (people fishing) or only moving ones.
"""

from __future__ import annotations

from gridwatch.detectors.rules.common import Finding, ZoneObservation
from gridwatch.settings.rules.presence import PresenceConditionSettings


class PresenceCheck:
    """Evaluates a `PresenceConditionSettings` on the tracks of an observation."""

    def __init__(self, name: str, cond: PresenceConditionSettings) -> None:
        self.name = name
        self.cond = cond
        self.classes = frozenset(cond.classes)

    def evaluate(self, obs: ZoneObservation) -> Finding | None:
        c = self.cond
        counted = [
            tr for tr in obs.tracks
            if tr.cls in self.classes
            and tr.detection is not None and tr.detection.score >= c.min_score
            and tr.dwell(obs.zone) >= c.min_dwell_s
            and (c.stationary is None or tr.stationary is c.stationary)
        ]
        if len(counted) < c.min_count:
            return None
        objects: dict[str, int] = {}
        for tr in counted:
            objects[tr.cls] = objects.get(tr.cls, 0) + 1
        detections = [tr.detection for tr in counted if tr.detection is not None]
        return Finding(
            objects=objects,
            detections=detections,
            score=sum(d.score for d in detections),
            details={"tracks": [
                {"id": tr.id, "cls": tr.cls, "dwell_s": round(tr.dwell(obs.zone), 2),
                 "stationary": tr.stationary}
                for tr in counted
            ]},
        )
