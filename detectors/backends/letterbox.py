"""Letterboxing: fit any frame into the model's fixed input without distorting it, and map boxes
back to the frame exactly. `stretch` fills the whole input instead, aspect not kept, for graphs
trained that way (DETR-style models).

The canvas is allocated once per detector and the pad area is only repainted when the source
size changes: cameras keep their resolution, so the hot path is one resize into a fixed ROI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Placement = Literal["top_left", "centre", "stretch"]


@dataclass(frozen=True, slots=True)
class LetterboxGeometry:
    """Where the source sits on the canvas: canvas = source * scale + pad.

    Separate x/y scales because the resized size is rounded to whole pixels; using the true
    per-axis ratio makes the inverse exact (cv2.resize maps pixel edges by exactly that ratio).
    """

    src_w: int
    src_h: int
    width: int
    height: int
    pad_x: int
    pad_y: int

    @property
    def scale_x(self) -> float:
        return self.width / self.src_w

    @property
    def scale_y(self) -> float:
        return self.height / self.src_h

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Canvas (x1, y1, x2, y2) boxes -> source pixels, clipped to the source image."""
        out = np.empty_like(boxes)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(out[:, 0::2], 0, self.src_w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.src_h, out=out[:, 1::2])
        return out

    def to_canvas(self, boxes: np.ndarray) -> np.ndarray:
        out = np.empty_like(boxes)
        out[:, 0::2] = boxes[:, 0::2] * self.scale_x + self.pad_x
        out[:, 1::2] = boxes[:, 1::2] * self.scale_y + self.pad_y
        return out


def letterbox_geometry(
    src_w: int, src_h: int, dst_w: int, dst_h: int, placement: Placement
) -> LetterboxGeometry:
    if placement == "stretch":
        return LetterboxGeometry(src_w, src_h, dst_w, dst_h, 0, 0)
    ratio = min(dst_w / src_w, dst_h / src_h)
    width = min(dst_w, max(1, round(src_w * ratio)))
    height = min(dst_h, max(1, round(src_h * ratio)))
    if placement == "centre":
        pad_x, pad_y = (dst_w - width) // 2, (dst_h - height) // 2
    else:
        pad_x = pad_y = 0
    return LetterboxGeometry(src_w, src_h, width, height, pad_x, pad_y)


class Letterboxer:
    """Reusable letterbox into a preallocated uint8 canvas of the model's input size."""

    def __init__(self, size: tuple[int, int], placement: Placement, pad_value: int = 114) -> None:
        width, height = size
        self.placement = placement
        self.pad_value = pad_value
        self.canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
        self._geometry: LetterboxGeometry | None = None

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, LetterboxGeometry]:
        """Return the canvas (reused: valid until the next call) and the geometry to undo it."""
        src_h, src_w = image.shape[:2]
        geo = self._geometry
        if geo is None or geo.src_w != src_w or geo.src_h != src_h:
            dst_h, dst_w = self.canvas.shape[:2]
            geo = letterbox_geometry(src_w, src_h, dst_w, dst_h, self.placement)
            self.canvas.fill(self.pad_value)
            self._geometry = geo
        roi = self.canvas[geo.pad_y : geo.pad_y + geo.height, geo.pad_x : geo.pad_x + geo.width]
        if geo.width == src_w and geo.height == src_h:
            roi[...] = image
        else:
            cv2.resize(image, (geo.width, geo.height), dst=roi, interpolation=cv2.INTER_LINEAR)
        return self.canvas, geo
