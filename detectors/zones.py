"""Zones: polygons in 0-1 image coordinates, turned into pixels once the frame size is known."""

from __future__ import annotations

import cv2
import numpy as np

from gridwatch.settings.zones import ZoneSettings


class Zone:
    """A zone bound to one frame size: pixel polygon, bounding box and a point test."""

    def __init__(self, spec: ZoneSettings, width: int, height: int) -> None:
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

