"""Which of a frame's detections stand in which zone, worked out once per analysed frame.

The tracker (entry times, dwell, ground speed) and the zone rules (counts, evidence) both need
it; computing it once and handing the same answer to both keeps them from disagreeing about a
foot point on a zone's border, and costs one polygon test per detection and zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gridwatch.detectors.detection import Detection
from gridwatch.detectors.zones import Zone


@dataclass(frozen=True, slots=True)
class ZoneMembership:
    """Per zone id, one boolean per detection of the frame (in the frame's order)."""

    inside: dict[str, np.ndarray]

    @classmethod
    def of(cls, zones: Sequence[Zone], detections: Sequence[Detection]) -> ZoneMembership:
        feet = np.array([d.foot for d in detections], dtype=np.float64).reshape(-1, 2)
        return cls({zone.id: zone.contains_points(feet) for zone in zones})

    def detections_in(self, zone_id: str, detections: Sequence[Detection]) -> list[Detection]:
        return [d for d, inside in zip(detections, self.inside[zone_id], strict=True) if inside]

    def zones_of(self, index: int) -> set[str]:
        """Ids of the zones holding the detection at `index`."""
        return {zone_id for zone_id, inside in self.inside.items() if inside[index]}
