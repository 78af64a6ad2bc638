"""MOTChallenge ground truth of a pedestrian sequence, scored per frame as MOTChallenge does.

Targets are gt rows of pedestrians (class 1) with conf 1 and visibility >= 0.5; a detection
matched (Hungarian, IoU >= 0.5) to a distractor (static person, reflection, person on
vehicle, distractor) or to a low-visibility pedestrian is neither a hit nor a false positive.
Ground-truth boxes are clipped to the image by default (detections always are).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

IOU = 0.5
# MOT17 classes whose matches are ignored: person on vehicle, static person, distractor,
# reflection. Pedestrians (1) below the visibility threshold are ignored too.
MOT_IGNORED = frozenset({2, 7, 8, 12})
MOT_MIN_VISIBILITY = 0.5

MotRow = tuple[list[float], bool, bool]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def load_mot_gt(folder: Path, clip: bool = True) -> tuple[dict[int, list[MotRow]], int, int]:
    """gt.txt rows per frame: (box, is_target, is_ignored)."""
    info = dict(
        line.split("=", 1) for line in (folder / "seqinfo.ini").read_text().splitlines()
        if "=" in line
    )
    width, height = int(info["imWidth"]), int(info["imHeight"])
    rows: dict[int, list[MotRow]] = {}
    for line in (folder / "gt" / "gt.txt").read_text().splitlines():
        f, _id, x, y, w, h, conf, cls, vis = line.split(",")
        box = [float(x), float(y), float(x) + float(w), float(y) + float(h)]
        if clip:
            box = [max(0.0, box[0]), max(0.0, box[1]), min(width, box[2]), min(height, box[3])]
        c = int(cls)
        target = c == 1 and int(float(conf)) == 1 and float(vis) >= MOT_MIN_VISIBILITY
        ignored = c in MOT_IGNORED or (c == 1 and not target)
        if target or ignored:
            rows.setdefault(int(f), []).append((box, target, ignored))
    return rows, width, height


def score_mot_frame(boxes: list[list[float]], gt: list[MotRow]) -> tuple[int, int, int]:
    """(hits, false positives, targets) of one frame, MOTChallenge style."""
    targets = sum(1 for _, t, _ in gt if t)
    if not boxes:
        return 0, 0, targets
    iou = iou_matrix(np.array(boxes, float), np.array([g[0] for g in gt], float))
    rows, cols = linear_sum_assignment(-np.where(iou >= IOU, iou, 0.0))
    hits = ignored = 0
    for r, c in zip(rows, cols, strict=True):
        if iou[r, c] < IOU:
            continue
        if gt[c][1]:
            hits += 1
        else:
            ignored += 1
    return hits, len(boxes) - hits - ignored, targets


def precision_recall(hits: int, fps: int, targets: int) -> dict[str, Any]:
    return {
        "precision": round(hits / (hits + fps), 3) if hits + fps else None,
        "recall": round(hits / targets, 3) if targets else None,
        "hits": hits, "false_positives": fps, "targets": targets,
    }


def score_mot(frames: list[list[list[float]]], gt: dict[int, list[MotRow]]) -> dict[str, Any]:
    hits = fps = targets = 0
    count_errors = []
    for i, boxes in enumerate(frames):
        h, f, t = score_mot_frame(boxes, gt.get(i + 1, []))
        hits, fps, targets = hits + h, fps + f, targets + t
        count_errors.append(abs(h + f - t) / t if t else 0.0)
    return {**precision_recall(hits, fps, targets),
            "count_error": round(float(np.mean(count_errors)), 3) if count_errors else None}
