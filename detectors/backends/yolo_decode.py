"""Turning raw YOLO head outputs into scored, class-aware, de-duplicated boxes.

Each decoder filters by score before touching box geometry: on a typical frame only a few dozen
of the thousands of anchors pass, so exp/grid work and NMS stay well under a millisecond.
Boxes come out in model-canvas pixels as (x1, y1, x2, y2); the letterbox maps them back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

STRIDES = (8, 16, 32)
MAX_DETECTIONS = 300


@dataclass(frozen=True, slots=True)
class Candidates:
    """Boxes that passed the score filter, before or after NMS (parallel arrays)."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 on the canvas
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32

    @classmethod
    def empty(cls) -> Candidates:
        return cls(
            np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int32)
        )

    def __len__(self) -> int:
        return len(self.scores)


class Decoder(Protocol):
    """One head layout; the backend checks the graph's output shape against it at load."""

    def expected_output_shape(self, num_classes: int) -> tuple[int, int]: ...

    def __call__(
        self, output: np.ndarray, conf: float, class_ids: np.ndarray | None
    ) -> Candidates: ...


def anchor_count(input_size: tuple[int, int]) -> int:
    width, height = input_size
    return sum((width // s) * (height // s) for s in STRIDES)


class YoloxDecoder:
    """Raw YOLOX head [anchors, 5 + classes]: cx, cy, w, h in grid units, objectness, classes."""

    def __init__(self, input_size: tuple[int, int]) -> None:
        width, height = input_size
        grids, strides = [], []
        for s in STRIDES:
            ys, xs = np.meshgrid(np.arange(height // s), np.arange(width // s), indexing="ij")
            grids.append(np.stack((xs.ravel(), ys.ravel()), axis=1))
            strides.append(np.full((xs.size, 1), s))
        self.grid = np.concatenate(grids).astype(np.float32)
        self.stride = np.concatenate(strides).astype(np.float32)
        self.anchors = len(self.grid)

    def expected_output_shape(self, num_classes: int) -> tuple[int, int]:
        return self.anchors, 5 + num_classes

    def __call__(
        self, output: np.ndarray, conf: float, class_ids: np.ndarray | None
    ) -> Candidates:
        # score = objectness * class score <= objectness, so objectness is a safe pre-filter.
        keep = np.flatnonzero(output[:, 4] > conf)
        if keep.size == 0:
            return Candidates.empty()
        rows = output[keep]
        cls_scores = rows[:, 5:] if class_ids is None else rows[:, 5 + class_ids]
        best = cls_scores.argmax(axis=1)
        scores = cls_scores[np.arange(len(best)), best] * rows[:, 4]
        ok = scores > conf
        if not ok.any():
            return Candidates.empty()
        keep, rows, best = keep[ok], rows[ok], best[ok]
        stride = self.stride[keep]
        centre = (rows[:, :2] + self.grid[keep]) * stride
        half = np.exp(rows[:, 2:4]) * stride / 2
        boxes = np.concatenate((centre - half, centre + half), axis=1)
        ids = best if class_ids is None else class_ids[best]
        return Candidates(boxes, scores[ok], ids.astype(np.int32))


class Yolov8Decoder:
    """Ultralytics head [4 + classes, anchors]: cx, cy, w, h in canvas pixels, class scores."""

    def __init__(self, input_size: tuple[int, int]) -> None:
        self.anchors = anchor_count(input_size)

    def expected_output_shape(self, num_classes: int) -> tuple[int, int]:
        return 4 + num_classes, self.anchors

    def __call__(
        self, output: np.ndarray, conf: float, class_ids: np.ndarray | None
    ) -> Candidates:
        cls_scores = output[4:] if class_ids is None else output[4 + class_ids]
        best_scores = cls_scores.max(axis=0)
        keep = np.flatnonzero(best_scores > conf)
        if keep.size == 0:
            return Candidates.empty()
        best = cls_scores[:, keep].argmax(axis=0)
        xywh = output[:4, keep].T
        half = xywh[:, 2:] / 2
        boxes = np.concatenate((xywh[:, :2] - half, xywh[:, :2] + half), axis=1)
        ids = best if class_ids is None else class_ids[best]
        return Candidates(boxes, best_scores[keep], ids.astype(np.int32))


DECODERS: dict[str, Callable[[tuple[int, int]], Decoder]] = {
    "yolox": YoloxDecoder,
    "yolov8": Yolov8Decoder,
}


def nms(candidates: Candidates, iou: float, max_detections: int = MAX_DETECTIONS) -> Candidates:
    """Class-aware NMS: a person next to a bicycle must not suppress it."""
    if len(candidates) == 0:
        return candidates
    b = candidates.boxes
    xywh = np.concatenate((b[:, :2], b[:, 2:] - b[:, :2]), axis=1)
    # cv2's stubs ask for Python sequences; the function takes numpy arrays as they are.
    kept = cv2.dnn.NMSBoxesBatched(xywh, candidates.scores,  # type: ignore[arg-type]
                                   candidates.class_ids, 0.0, iou)  # type: ignore[arg-type]
    keep = np.asarray(kept, dtype=np.int64).reshape(-1)[:max_detections]
    return Candidates(candidates.boxes[keep], candidates.scores[keep], candidates.class_ids[keep])
