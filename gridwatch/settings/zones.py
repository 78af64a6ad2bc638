"""A zone of a camera's picture: its polygon in 0-1 image coordinates, how the detector sweeps
it, and the rules that apply to it."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from gridwatch.settings.base import StrictSettings
from gridwatch.settings.calibration import GroundCalibrationSettings
from gridwatch.settings.rules import RuleSettings

TileCount = Annotated[int, Field(ge=1, le=8)]


class ZoneSettings(StrictSettings):
    """A region of a camera's picture with the rules that apply to it."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = None
    polygon: list[tuple[float, float]] = Field(
        description="Vertices as [x, y] fractions of the image width and height (0-1).",
    )
    area_m2: float | None = Field(
        default=None, gt=0, description="Real ground area of the zone, for density rules.",
    )
    calibration: GroundCalibrationSettings | None = Field(
        default=None, description="Pixels to ground metres, for speeds in m/s.",
    )
    tiles: tuple[TileCount, TileCount] | Literal["auto", "off"] = Field(
        default="auto",
        description="How the detector's zone sweep is tiled, as [columns, rows]: tiles show "
        "small, far objects at a useful size. 'auto' picks them from the zone's size in pixels "
        "against the model input; 'off' sweeps the zone in one view.",
    )
    tile_overlap: float = Field(
        default=0.3, ge=0.0, le=0.5,
        description="Overlap of neighbouring tiles (fraction of a tile), so that an object cut "
        "by one tile's edge lies whole in its neighbour.",
    )
    sweep_every_s: float = Field(
        default=10.0, gt=0,
        description="Seconds between detector sweeps of the whole zone without motion: "
        "objects that do not move (people fishing, a parked digger) are found and re-confirmed.",
    )
    rules: list[RuleSettings] = Field(default_factory=list)

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(pts) < 3:
            raise ValueError("needs at least 3 points")
        for i, (x, y) in enumerate(pts):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0-1 image coordinates")
        if polygon_area(pts) < 1e-6:
            raise ValueError("has no area (points are collinear or repeated)")
        return pts

    @model_validator(mode="after")
    def _area_for_density(self) -> ZoneSettings:
        for i, rule in enumerate(self.rules):
            if rule.needs_area and self.area_m2 is None:
                raise ValueError(
                    f"rules[{i}] counts people per square metre: set the zone's area_m2 "
                    "(its real ground area) or turn density off (density: null)"
                )
        return self


def polygon_area(pts: list[tuple[float, float]]) -> float:
    """Area of a polygon in the units of its points (0-1 fractions: share of the image)."""
    arr = np.asarray(pts, dtype=np.float64)
    x, y = arr[:, 0], arr[:, 1]
    return abs(0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
