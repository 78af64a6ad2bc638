"""What a model backend returns: boxes in source-image pixels with class and score.

`Detection` is the one detection type of the core: backends make it, merge fuses it, the
planner carries it over, the tracker fills its `track`, zones and rules select it and events
carry it to alerts. The box geometry every stage shares (area, overlap, foot point) is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]


@dataclass(slots=True)
class Detection:
    """One object in one frame.

    `box` is (x1, y1, x2, y2) in pixels of the frame handed to the detector, so callers
    never have to know the model's input size or letterbox. `track` is filled by the tracker.
    """

    cls: str
    cls_id: int
    score: float
    box: Box
    track: int | None = None

    @property
    def foot(self) -> tuple[float, float]:
        return foot_point(self.box)

    def to_json(self) -> dict:
        return {
            "cls": self.cls,
            "score": round(float(self.score), 4),
            "box": [round(float(v), 1) for v in self.box],
            "track": self.track,
        }


def foot_point(box: Sequence[float]) -> tuple[float, float]:
    """Bottom-centre: where a person or vehicle touches the ground, so zone membership, dwell
    and speed follow the ground position rather than the box's height in the picture."""
    return (box[0] + box[2]) / 2.0, box[3]


def box_area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_intersection(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union; 0 for boxes that do not overlap (or have no area)."""
    inter = box_intersection(a, b)
    return inter / (box_area(a) + box_area(b) - inter) if inter > 0 else 0.0
