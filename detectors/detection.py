"""What a model backend returns: boxes in source-image pixels with class and score."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Detection:
    """One object in one frame.

    `box` is (x1, y1, x2, y2) in pixels of the frame handed to the detector, so callers
    never have to know the model's input size or letterbox. `track` is filled by the tracker.
    """

    cls: str
    cls_id: int
    score: float
    box: tuple[float, float, float, float]
    track: int | None = None

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom-centre: where a person or vehicle touches the ground, used for zone tests."""
        x1, _, x2, y2 = self.box
        return (x1 + x2) / 2.0, y2

    def to_json(self) -> dict:
        return {
            "cls": self.cls,
            "score": round(float(self.score), 4),
            "box": [round(float(v), 1) for v in self.box],
            "track": self.track,
        }
