"""A zone's ground calibration: how its image pixels map to metres on the ground.

Either one scale (a top-down or far, flat view) or four image points and where they lie on the
ground (a homography, right for an oblique view of a flat bank, square or water surface).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator, model_validator

from gridwatch.settings.base import StrictSettings


class GroundCalibrationSettings(StrictSettings):
    """One of: `metres_per_pixel` (optionally measured at `at_width` pixels of image width), or
    `image_points` (0-1 image fractions, like zone polygons) with `ground_points` (metres)."""

    metres_per_pixel: float | None = Field(
        default=None, gt=0, description="Ground metres per image pixel (flat, top-down view).",
    )
    at_width: int | None = Field(
        default=None, gt=0,
        description="Image width the scale was measured at; other stream sizes are rescaled. "
        "Default: the analysed frame's width.",
    )
    image_points: list[tuple[float, float]] | None = Field(
        default=None, description="4 points as [x, y] fractions of the image (0-1).",
    )
    ground_points: list[tuple[float, float]] | None = Field(
        default=None, description="The same 4 points on the ground, [x, y] in metres.",
    )

    @field_validator("image_points")
    @classmethod
    def _in_image(cls, pts: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if pts is None:
            return pts
        for i, (x, y) in enumerate(pts):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0-1 image coordinates")
        return pts

    @model_validator(mode="after")
    def _one_form(self) -> GroundCalibrationSettings:
        points = (self.image_points, self.ground_points)
        if self.metres_per_pixel is not None:
            if any(p is not None for p in points):
                raise ValueError("give either metres_per_pixel or image_points/ground_points")
            return self
        if self.at_width is not None:
            raise ValueError("at_width only applies to metres_per_pixel")
        if any(p is None for p in points):
            raise ValueError("needs metres_per_pixel, or both image_points and ground_points")
        if len(self.image_points or []) != 4 or len(self.ground_points or []) != 4:
            raise ValueError("image_points and ground_points need exactly 4 points each")
        for name in ("image_points", "ground_points"):
            pts = getattr(self, name)
            if _degenerate(np.asarray(pts, dtype=np.float64)):
                raise ValueError(f"{name}: 3 of the 4 points lie on one line")
        return self


def _degenerate(pts: np.ndarray) -> bool:
    """True when any 3 of 4 points are (nearly) collinear: no homography exists then."""
    scale = float(np.ptp(pts, axis=0).max()) or 1.0
    for skip in range(4):
        a, b, c = (pts[i] for i in range(4) if i != skip)
        cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(cross) < 1e-4 * scale * scale:
            return True
    return False
