"""Presence: enough tracked objects of some classes in the zone, each there long enough.

Dwell is per track (how long this boat has been in the zone), not "something has been in
the zone": two people walking through one after the other never make a 5-minute dwell.
`stationary` keeps only objects that stay put (people fishing) or only moving ones.
"""

from __future__ import annotations

import logging
from typing import Literal

from gridwatch.detectors.rules.common import Finding, RuleCommon, Strict, ZoneObservation
from pydantic import Field

log = logging.getLogger(__name__)


class PresenceCondition(Strict):
    """Which objects count, and how many must be there for how long."""

    classes: list[str] = Field(min_length=1)
    min_count: int = Field(default=1, ge=1)
    min_dwell_s: float = Field(
        default=5.0, ge=0, description="Each counted track has been in the zone this long.",
    )
    stationary: bool | None = Field(
        default=None, description="true: only objects that stay put; false: only moving ones.",
    )
    min_score: float = Field(default=0.3, ge=0, le=1)


class PresenceCheck:
    """Evaluates a `PresenceCondition` on the tracks of an observation."""

    def __init__(self, name: str, cond: PresenceCondition) -> None:
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


class PresenceRuleSpec(RuleCommon, PresenceCondition):
    """`type: presence`: objects of these classes in the zone, per-track dwell, optionally
    stationary."""

    type: Literal["presence"] = "presence"
    kind: str = Field(default="presence", min_length=1, description="Incident kind it raises.")
