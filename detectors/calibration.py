"""Ground calibration of a zone: image pixels to metres on the ground.

Speeds in pixels per second depend on how far the object is from the camera; rules about real
speed need metres. A zone can say how its picture maps to the ground, either with one scale
(a top-down or far, flat view) or with four image points and where they lie on the ground
(a homography, right for an oblique view of a flat bank, square or water surface).
"""

from __future__ import annotations

import cv2
import numpy as np

from gridwatch.settings.calibration import GroundCalibrationSettings


def ground_map(calibration: GroundCalibrationSettings, width: int, height: int) -> GroundMap:
    """The mapping of `calibration` for frames of this size."""
    if calibration.metres_per_pixel is not None:
        scale = calibration.metres_per_pixel * (calibration.at_width or width) / width
        return GroundMap(np.diag([scale, scale, 1.0]))
    src = np.asarray(calibration.image_points, dtype=np.float32) * np.array([width, height],
                                                                            dtype=np.float32)
    dst = np.asarray(calibration.ground_points, dtype=np.float32)
    return GroundMap(cv2.getPerspectiveTransform(src, dst))


class GroundMap:
    """Pixels of one frame size to ground metres."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix.astype(np.float64)

    def to_ground(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel points -> (N, 2) ground points in metres."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.matrix).reshape(-1, 2)
