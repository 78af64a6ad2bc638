"""The fine-tuned excavator model against the COCO model it came from; prints one JSON object.

- `machinery`: ../shared/datasets/construction_machinery, class 8 (earth-moving machines), on the
  harness's validation split (benchmarks/labels/splits/), which the training script never saw,
  and on the development split it trained on, for reference.
  The fine-tuned model is scored on its `excavator` class; the COCO baseline on the classes it
  gives machines (car, truck, bus, motorcycle, train) merged into one machine class. Recall and
  precision at the operating score (greedy matching at IoU >= 0.5, highest score first) and AP50
  (supervision's MeanAveragePrecision).
- `boats` (shore_boats, class 2 against `boat`) and `pedestrians` (MOT17-09 frames 1-4, scored as
  benchmarks/accuracy.py scores them): the COCO outputs the fine-tune must not have made worse.

All whole-frame, one inference an image, through the service's detector backend. `detect_ms`:
median wall time of one `detect` on a 640x640 still, 1 thread, both models in turn in this run
(compare the ratio, not the absolute figure, on a shared machine).

Usage: nice -n 10 .venv/bin/python benchmarks/machinery_model.py [--conf 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from supervision.metrics import MeanAveragePrecision

from gridwatch.detectors.backends.base import Detector, class_ids
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.evaluation.mot import load_mot_gt, score_mot_frame

REPO = Path(__file__).resolve().parent.parent
FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
DATASETS = REPO.parent / "shared" / "datasets"
BASELINE, TUNED = "yolox_nano_coco_416", "yolox_nano_excavator_416"
COCO_MACHINES = ("car", "truck", "bus", "motorcycle", "train")
SPLIT_FILE = Path(__file__).resolve().parent / "labels" / "splits" / "construction_machinery.txt"
IOU = 0.5


def validation_names() -> set[str]:
    return {line.strip() for line in SPLIT_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def yolo_boxes(label_file: Path, cls: int, width: int, height: int) -> np.ndarray:
    rows = [r.split() for r in label_file.read_text().splitlines() if r.strip()]
    out = [[(float(cx) - float(w) / 2) * width, (float(cy) - float(h) / 2) * height,
            (float(cx) + float(w) / 2) * width, (float(cy) + float(h) / 2) * height]
           for c, cx, cy, w, h in (r[:5] for r in rows) if int(c) == cls]
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def greedy_hits(pred: np.ndarray, scores: np.ndarray, gt: np.ndarray) -> int:
    """Predictions matched one-to-one to ground truth, highest score first, at IoU >= 0.5."""
    if len(pred) == 0 or len(gt) == 0:
        return 0
    iou = iou_matrix(pred, gt)
    free = np.ones(len(gt), bool)
    hits = 0
    for i in np.argsort(-scores):
        candidates = np.where(free, iou[i], 0.0)
        j = int(np.argmax(candidates))
        if candidates[j] >= IOU:
            free[j] = False
            hits += 1
    return hits


def score_set(detector: Detector, images: list[Path], labels: Path, gt_cls: int,
              wanted: set[int], conf: float) -> dict[str, float | int]:
    """Recall/precision at `conf` and AP50 of `wanted` (merged) against class `gt_cls`."""
    hits = predicted = targets = 0
    preds, gts = [], []
    for path in images:
        image = cv2.imread(str(path))
        height, width = image.shape[:2]
        gt = yolo_boxes(labels / f"{path.stem}.txt", gt_cls, width, height)
        found = detector.detect(image, conf=0.01, classes=wanted)
        boxes = np.array([d.box for d in found], dtype=np.float64).reshape(-1, 4)
        scores = np.array([d.score for d in found], dtype=np.float64)
        keep = scores >= conf
        hits += greedy_hits(boxes[keep], scores[keep], gt)
        predicted += int(keep.sum())
        targets += len(gt)
        preds.append(sv.Detections(xyxy=boxes, confidence=scores,
                                   class_id=np.zeros(len(boxes), int)))
        gts.append(sv.Detections(xyxy=gt, class_id=np.zeros(len(gt), int)))
    ap50 = MeanAveragePrecision().update(preds, gts).compute().map50
    return {"images": len(images), "targets": targets, "predicted": predicted, "hits": hits,
            "recall": round(hits / max(targets, 1), 3),
            "precision": round(hits / max(predicted, 1), 3), "ap50": round(float(ap50), 3)}


def score_mot(detector: Detector, conf: float) -> dict[str, float | int]:
    folder = FOOTAGE / "mot17_09_mini"
    gt, _, _ = load_mot_gt(folder)
    person = class_ids(detector.names, ["person"])
    hits = false = targets = 0
    for frame in sorted(gt):
        image = cv2.imread(str(folder / "img1" / f"{frame:06d}.jpg"))
        boxes = [list(d.box) for d in detector.detect(image, conf=conf, classes=person)]
        h, f, t = score_mot_frame(boxes, gt[frame])
        hits, false, targets = hits + h, false + f, targets + t
    return {"targets": targets, "hits": hits, "false_positives": false,
            "recall": round(hits / max(targets, 1), 3),
            "precision": round(hits / max(hits + false, 1), 3)}


def detect_ms(name: str, image: np.ndarray, runs: int = 40) -> float:
    detector = create_detector(name, threads=1)
    detector.detect(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.detect(image)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", type=float, default=0.5)
    args = parser.parse_args()
    machinery = DATASETS / "construction_machinery"
    all_images = sorted((machinery / "images").iterdir())
    validation = validation_names()
    splits = {"val": [p for p in all_images if p.name in validation],
              "dev": [p for p in all_images if p.name not in validation]}
    boats = DATASETS / "shore_boats"
    boat_images = sorted((boats / "images").iterdir())
    result: dict[str, object] = {"conf": args.conf, "iou": IOU}
    for name in (BASELINE, TUNED):
        detector = create_detector(name, threads=2)
        machines = ["excavator"] if "excavator" in detector.names else list(COCO_MACHINES)
        result[name] = {
            "machine_classes": machines,
            "machinery": {split: score_set(detector, images, machinery / "labels", 8,
                                           class_ids(detector.names, machines), args.conf)
                          for split, images in splits.items()},
            "boats": score_set(detector, boat_images, boats / "labels", 2,
                               class_ids(detector.names, ["boat"]), args.conf),
            "pedestrians_mot17_09": score_mot(detector, args.conf),
        }
    still = cv2.imread(str(splits["val"][0]))
    rounds = [{name: detect_ms(name, still) for name in (BASELINE, TUNED)} for _ in range(2)]
    costs = {name: min(r[name] for r in rounds) for name in (BASELINE, TUNED)}
    result["detect_ms"] = costs
    result["detect_cost_ratio"] = round(costs[TUNED] / costs[BASELINE], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
