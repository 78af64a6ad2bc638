"""Where the detector looks: crops around motion and known objects, zone sweeps and tiles.

The detector sees a fixed input (416x416 for YOLOX-nano). Handing it a whole 1080p frame shrinks
a 60 px pedestrian to 23 px, below what a nano model finds reliably; handing it a crop around
the object (upscaled by the letterbox when the crop is smaller than the input) shows the same
pedestrian at a useful size for the same cost. So every plan here is a short list of boxes in
source pixels, each shaped like the model input so that the letterbox wastes no pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Box = tuple[int, int, int, int]
Reason = Literal["sweep", "tile", "motion", "track"]


@dataclass(frozen=True, slots=True)
class Region:
    """One detector input: a box of the source frame and why it was chosen."""

    box: Box
    reason: Reason
    zone: str | None = None

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    def crop(self, image: np.ndarray) -> np.ndarray:
        """A view (no copy) of the region; the letterbox resizes it into the model input."""
        x1, y1, x2, y2 = self.box
        return image[y1:y2, x1:x2]

    def to_json(self) -> dict:
        return {"box": list(self.box), "reason": self.reason, "zone": self.zone}


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    """Round outwards to whole pixels and keep inside the frame (at least 1 px wide/high)."""
    x1 = min(max(0, math.floor(box[0])), width - 1)
    y1 = min(max(0, math.floor(box[1])), height - 1)
    x2 = max(min(width, math.ceil(box[2])), x1 + 1)
    y2 = max(min(height, math.ceil(box[3])), y1 + 1)
    return x1, y1, x2, y2


def fit_aspect(box: Sequence[float], aspect: float, width: int, height: int) -> Box:
    """Grow the short side so the box has the model's aspect (w/h), sliding it to stay inside
    the frame: the extra pixels are free context instead of letterbox padding."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if w / max(h, 1e-6) < aspect:
        w = min(float(width), h * aspect)
    else:
        h = min(float(height), w / aspect)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    nx1 = min(max(0.0, cx - w / 2), width - w)
    ny1 = min(max(0.0, cy - h / 2), height - h)
    return clip_box((nx1, ny1, nx1 + w, ny1 + h), width, height)


def auto_grid(area_w: int, area_h: int, input_size: tuple[int, int],
              max_downscale: float) -> tuple[int, int]:
    """Tiles (cols, rows) so that no tile is shrunk by more than about `max_downscale` on its way
    into the model input; 1x1 when the area already fits."""
    in_w, in_h = input_size
    cols = max(1, round(area_w / (in_w * max_downscale)))
    rows = max(1, round(area_h / (in_h * max_downscale)))
    return cols, rows


def grid_tiles(area: Box, cols: int, rows: int, overlap: float, *, zone: str | None = None,
               reason: Reason = "tile") -> list[Region]:
    """`cols` x `rows` tiles covering `area`, neighbours overlapping by `overlap` of a tile, so
    an object cut by one tile's edge lies whole inside its neighbour when it is smaller than
    the overlap."""
    x1, y1, x2, y2 = area
    xs = _spans(x1, x2, cols, overlap)
    ys = _spans(y1, y2, rows, overlap)
    return [Region((a, b, c, d), reason, zone) for b, d in ys for a, c in xs]


def _spans(start: int, end: int, n: int, overlap: float) -> list[tuple[int, int]]:
    length = end - start
    if n <= 1:
        return [(start, end)]
    size = math.ceil(length / (n - (n - 1) * overlap))
    step = (length - size) / (n - 1)
    return [(start + round(i * step), min(end, start + round(i * step) + size)) for i in range(n)]


def plan_crops(
    boxes: Iterable[Sequence[float]],
    frame_size: tuple[int, int],
    input_size: tuple[int, int],
    *,
    reason: Reason,
    pad: float = 0.5,
    min_side: int | None = None,
    max_crops: int = 4,
) -> list[Region]:
    """Crops around `boxes` (source pixels): each padded by `pad` of its size for context,
    at least `min_side` pixels (default: a third of the model input, i.e. at most 3x
    upscaling, beyond which a crop adds no detail), shaped like the model input.

    Overlapping crops become one crop when that costs fewer pixels than running both; then
    the closest pairs are merged until at most `max_crops` remain, so a busy frame degrades
    to a few larger views instead of many inferences.
    """
    width, height = frame_size
    aspect = input_size[0] / input_size[1]
    side = min_side if min_side is not None else max(input_size) // 3
    crops: list[Box] = []
    for b in boxes:
        x1, y1, x2, y2 = (float(v) for v in b)
        w, h = x2 - x1, y2 - y1
        px, py = w * pad / 2 + 1, h * pad / 2 + 1
        grown = (x1 - px, y1 - py, x2 + px, y2 + py)
        crops.append(_at_least(grown, side, aspect, width, height))
    merged = _merge_overlapping(crops, aspect, width, height, side)
    while len(merged) > max_crops:
        merged = _merge_closest(merged, aspect, width, height, side)
    return [Region(c, reason) for c in merged]


def _at_least(box: Sequence[float], side: int, aspect: float, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w = max(x2 - x1, side * aspect if aspect >= 1 else side)
    h = max(y2 - y1, side / aspect if aspect < 1 else side)
    return fit_aspect((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), aspect, width, height)


def _area(b: Box) -> int:
    return (b[2] - b[0]) * (b[3] - b[1])


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _overlap(a: Box, b: Box) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


def _merge_overlapping(crops: list[Box], aspect: float, width: int, height: int,
                       side: int) -> list[Box]:
    """Join overlapping crops while the joined crop is no larger than the two it replaces."""
    out = list(crops)
    changed = True
    while changed:
        changed = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if not _overlap(a, b):
                    continue
                joined = _at_least(_union(a, b), side, aspect, width, height)
                if _area(joined) <= _area(a) + _area(b):
                    out[i] = joined
                    del out[j]
                    changed = True
                    break
            if changed:
                break
    return out


def _merge_closest(crops: list[Box], aspect: float, width: int, height: int,
                   side: int) -> list[Box]:
    """Join the pair whose joined crop grows least."""
    best: tuple[int, int, Box] | None = None
    best_cost = math.inf
    for i in range(len(crops)):
        for j in range(i + 1, len(crops)):
            joined = _at_least(_union(crops[i], crops[j]), side, aspect, width, height)
            cost = _area(joined) - _area(crops[i]) - _area(crops[j])
            if cost < best_cost:
                best_cost, best = cost, (i, j, joined)
    assert best is not None
    i, j, joined = best
    return [c for k, c in enumerate(crops) if k not in (i, j)] + [joined]
