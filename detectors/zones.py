"""Zones: polygons in 0-1 image coordinates, turned into pixels once the frame size is known."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import cv2
import numpy as np
from gridwatch.detectors.calibration import GroundCalibration
from gridwatch.detectors.rules import RuleSpec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

log = logging.getLogger(__name__)

TileCount = Annotated[int, Field(ge=1, le=8)]


class ZoneSpec(BaseModel):
    """A region of a camera's picture with the rules that apply to it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = None
    polygon: list[tuple[float, float]] = Field(
        description="Vertices as [x, y] fractions of the image width and height (0-1).",
    )
    area_m2: float | None = Field(
        default=None, gt=0, description="Real ground area of the zone, for density rules.",
    )
    calibration: GroundCalibration | None = Field(
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
    rules: list[RuleSpec] = Field(default_factory=list)

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(pts) < 3:
            raise ValueError("needs at least 3 points")
        for i, (x, y) in enumerate(pts):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0-1 image coordinates")
        if abs(_shoelace(pts)) < 1e-6:
            raise ValueError("has no area (points are collinear or repeated)")
        return pts

    @model_validator(mode="after")
    def _area_for_density(self) -> ZoneSpec:
        for i, rule in enumerate(self.rules):
            if rule.needs_area and self.area_m2 is None:
                raise ValueError(
                    f"rules[{i}] counts people per square metre: set the zone's area_m2 "
                    "(its real ground area) or turn density off (density: null)"
                )
        return self


def _shoelace(pts: list[tuple[float, float]]) -> float:
    arr = np.asarray(pts, dtype=np.float64)
    x, y = arr[:, 0], arr[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


class Zone:
    """A zone bound to one frame size: pixel polygon, bounding box and a point test."""

    def __init__(self, spec: ZoneSpec, width: int, height: int) -> None:
        self.spec = spec
        self.id = spec.id
        self.width = width
        self.height = height
        self.polygon = np.array(
            [(x * width, y * height) for x, y in spec.polygon], dtype=np.float32
        )
        x, y, w, h = cv2.boundingRect(self.polygon.astype(np.int32))
        self.bbox = (x, y, x + w, y + h)

    def contains(self, point: tuple[float, float]) -> bool:
        return bool(self.contains_points(np.array([point], dtype=np.float64))[0])

    def contains_points(self, points: np.ndarray) -> np.ndarray:
        """Which of `points` (N x 2 pixels) lie inside or on the border, as N booleans.

        Points outside the bounding box are rejected in one array step; the rest get cv2's
        exact polygon test, so a foot point on the border counts as inside, as it always has.
        """
        x1, y1, x2, y2 = self.bbox
        px, py = points[:, 0], points[:, 1]
        inside = (px >= x1 - 1) & (px <= x2 + 1) & (py >= y1 - 1) & (py <= y2 + 1)
        for i in np.flatnonzero(inside):
            point = (float(px[i]), float(py[i]))
            inside[i] = cv2.pointPolygonTest(self.polygon, point, False) >= 0
        return inside

    def mask(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """A uint8 0/255 mask of the zone at the given (default: native) size."""
        w, h = width or self.width, height or self.height
        scaled = self.polygon * np.array([w / self.width, h / self.height], dtype=np.float32)
        out = np.zeros((h, w), dtype=np.uint8)
        cv2.fillPoly(out, [np.round(scaled).astype(np.int32)], 255)
        return out

    @property
    def area_fraction(self) -> float:
        return abs(_shoelace(self.spec.polygon))
