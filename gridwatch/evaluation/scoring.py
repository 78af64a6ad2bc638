"""Figures from boxes: supervision's metrics, one category at a time, plus crowd counts.

Each category is scored as a one-class problem: the predictions are the pipeline's boxes of
any class the category counts, the targets are the labelled boxes of that category. Average
precision (AP50, COCO's 101-point interpolation, as supervision computes it) ranks every box
the low-threshold pass reported; precision and recall at IoU 0.5 take exactly the boxes the
pipeline reports at its operating threshold. Object sizes are COCO's (small < 32², medium
< 96², large, by box area), as supervision splits them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv
from supervision.detection.utils.iou_and_nms import box_iou_batch
from supervision.metrics import MeanAveragePrecision, Precision, Recall

IOU = 0.5
SIZES = ("small", "medium", "large")


@dataclass(frozen=True, slots=True)
class ScoredBoxes:
    """Boxes (x1, y1, x2, y2 pixels) of one category in one image, with scores for
    predictions (targets have none)."""

    boxes: np.ndarray
    scores: np.ndarray | None = None

    def to_sv(self) -> sv.Detections:
        n = len(self.boxes)
        return sv.Detections(
            xyxy=np.asarray(self.boxes, dtype=np.float32).reshape(n, 4),
            class_id=np.zeros(n, dtype=int),
            confidence=None if self.scores is None else np.asarray(self.scores, np.float32),
        )

    @classmethod
    def empty(cls, with_scores: bool) -> ScoredBoxes:
        return cls(np.zeros((0, 4)), np.zeros(0) if with_scores else None)


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) and value >= 0 else None


def ap50(predictions: Sequence[ScoredBoxes], targets: Sequence[ScoredBoxes]) -> dict[str, Any]:
    """AP at IoU 0.5 over all objects and per size."""
    result = MeanAveragePrecision().update([p.to_sv() for p in predictions],
                                           [t.to_sv() for t in targets]).compute()
    out: dict[str, Any] = {"all": _finite(result.map50)}
    for size in SIZES:
        part = getattr(result, f"{size}_objects")
        out[size] = _finite(part.map50) if part is not None else None
    return out


def precision_recall(predictions: Sequence[ScoredBoxes], targets: Sequence[ScoredBoxes]
                     ) -> dict[str, Any]:
    """Precision and recall at IoU 0.5 of the boxes given (the operating threshold's), over
    all objects and per size, with the counts behind them."""
    preds = [p.to_sv() for p in predictions]
    truth = [t.to_sv() for t in targets]
    precision = Precision().update(preds, truth).compute()
    recall = Recall().update(preds, truth).compute()
    out: dict[str, Any] = {
        "precision": _finite(precision.precision_at_50) if _any(preds) else None,
        "recall": _finite(recall.recall_at_50) if _any(truth) else None,
        "targets": int(sum(len(t) for t in truth)),
        "predictions": int(sum(len(p) for p in preds)),
    }
    for size in SIZES:
        p_part = getattr(precision, f"{size}_objects")
        r_part = getattr(recall, f"{size}_objects")
        n_targets = sum(int(np.sum(_size_of(t.xyxy) == size)) for t in truth)
        n_preds = sum(int(np.sum(_size_of(p.xyxy) == size)) for p in preds)
        out[size] = {
            "precision": _finite(p_part.precision_at_50) if p_part is not None and n_preds
            else None,
            "recall": _finite(r_part.recall_at_50) if r_part is not None and n_targets
            else None,
            "targets": n_targets, "predictions": n_preds,
        }
    return out


def _any(items: Sequence[sv.Detections]) -> bool:
    return any(len(d) for d in items)


def _size_of(xyxy: np.ndarray) -> np.ndarray:
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    return np.where(area < 32**2, "small", np.where(area < 96**2, "medium", "large"))


def at_least_wide(predictions: ScoredBoxes, targets: ScoredBoxes, min_width_px: float
                  ) -> tuple[ScoredBoxes, ScoredBoxes]:
    """Keep targets at least `min_width_px` wide; a prediction that matches a narrower
    target better than any kept one is dropped too (COCO's ignore: neither hit nor false
    positive)."""
    widths = targets.boxes[:, 2] - targets.boxes[:, 0]
    keep = widths >= min_width_px
    kept, narrow = targets.boxes[keep], targets.boxes[~keep]
    if not len(predictions.boxes) or not len(narrow):
        return predictions, ScoredBoxes(kept)
    iou_narrow = box_iou_batch(predictions.boxes, narrow).max(axis=1)
    iou_kept = (box_iou_batch(predictions.boxes, kept).max(axis=1) if len(kept)
                else np.zeros(len(predictions.boxes)))
    own = ~((iou_narrow >= IOU) & (iou_narrow > iou_kept))
    scores = None if predictions.scores is None else predictions.scores[own]
    return ScoredBoxes(predictions.boxes[own], scores), ScoredBoxes(kept)


def count_errors(counted: Sequence[tuple[str, int, int]]) -> dict[str, Any]:
    """(image, true count, counted) rows -> mean absolute error as a fraction of the true
    count (per image, then averaged), the pooled error and each image's figures."""
    errors = [(n - true) / true if true else None for _, true, n in counted]
    rows = [{"image": name, "true": true, "counted": n,
             "error": round(e, 4) if e is not None else None}
            for (name, true, n), e in zip(counted, errors, strict=True)]
    known = [e for e in errors if e is not None]
    total = sum(t for _, t, _ in counted)
    return {
        "images": len(rows),
        "mean_abs_error_fraction": round(float(np.mean(np.abs(known))), 4) if known else None,
        "pooled_abs_error_fraction": round(sum(abs(n - t) for _, t, n in counted) / total, 4)
        if total else None,
        "mean_signed_error_fraction": round(float(np.mean(known)), 4) if known else None,
        "per_image": rows,
    }
