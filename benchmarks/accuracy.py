"""Accuracy of the detection core on labelled real footage; prints one JSON object.

Each case runs `gridwatch analyze` (in process: `gridwatch.cli.analyze.run_analysis`, the same code
path as the CLI) with a camera configuration written here, and scores its JSON lines:

- `mot17`: MOT17-09 frames 1-4 with their ground truth, scored as MOTChallenge does: gt rows of
  pedestrians (class 1) with conf 1 and visibility >= 0.5 are the targets; detections matched
  (Hungarian, IoU >= 0.5) to a distractor (static person, reflection, person on vehicle,
  distractor) or to a low-visibility pedestrian are neither hits nor false positives. Ground-truth
  boxes are clipped to the image (detections always are; two of the pedestrians extend past the
  frame border); figures against the unclipped boxes are given too. Baselines in the same run,
  at the case's threshold and at the old default 0.3: one full-frame inference per frame (what
  the core did before), and naive 3x2 tiling merged by plain NMS only. `ablation_tiles_off`
  is the core with `tiles: off` (overview plus close looks at what it sees small).
- `boat`, `indoor_people`, `road_cart`: per analysed frame, is the labelled class reported where
  the labels say it is in view, and not where they say it is not (frame level; frames in the
  labels' ignore windows are not scored). Events: each labelled condition interval should open
  one incident, within 3 s of the condition having held for the rule's `min_dwell_s`; incidents
  that match no labelled interval are false (they flag stretches where nothing happens).
- `hall_crowd`: people counted on three hand-counted frames (target: within 15 %), and the crowd
  event.
- `shore_boats`, `construction_machinery`, `crowd_heads`: the shared labelled image sets, scored
  by the evaluation harness (`gridwatch evaluate`, gridwatch/evaluation): development and
  validation split apart, the pipeline beside the raw-model and main-default baselines.

Every clip case runs twice: `every_frame` (the detector on every frame, best accuracy) and
`service` (the 5 fps schedule with motion gating, what a deployment runs).

Usage: .venv/bin/python benchmarks/accuracy.py [--cases mot17,boat,...,shore_boats] [--conf 0.5]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gridwatch.cli.analyze import run_analysis
from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.backends.yolo_decode import Candidates, nms
from gridwatch.detectors.regions import grid_tiles
from gridwatch.evaluation.clips import read_clip_labels, score_counts, score_events, score_presence
from gridwatch.evaluation.mot import (
    MotRow,
    load_mot_gt,
    precision_recall,
    score_mot,
    score_mot_frame,
)
from gridwatch.evaluation.runner import DetectorCache, EvaluationRequest, evaluate_set
from gridwatch.evaluation.sets import SHARED_SETS
from gridwatch.settings import parse_config
from gridwatch.settings.model import ModelSettings

REPO = Path(__file__).resolve().parent.parent
LABELS = Path(__file__).resolve().parent / "labels"
FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
DATASETS = Path(os.environ.get("GRIDWATCH_DATASETS_DIR", REPO.parent / "shared" / "datasets"))
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
#: The configuration's default `incident_cooldown_s`, used as is.
COOLDOWN_S = 60.0


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    label_file: str | None
    cls: str
    zone: list[list[float]]
    rule: dict[str, Any]
    zone_options: dict[str, Any] = field(default_factory=dict)
    modes: tuple[str, ...] = ("every_frame", "service")


CASES = [
    Case("mot17", "mot17_09_mini/img1", None, "person", WHOLE,
         {"kind": "presence", "classes": ["person"], "min_dwell_s": 0}, modes=("every_frame",)),
    Case("boat", "fishing_boat_sea_640x360_30fps.mp4", "boat.yaml", "boat",
         [[0.0, 0.35], [1.0, 0.35], [1.0, 1.0], [0.0, 1.0]],
         {"kind": "illegal_fishing", "classes": ["boat"], "min_dwell_s": 2, "end_after_s": 4}),
    Case("hall_crowd", "crowd_hall_topdown_1280x720.avi", "hall_crowd.yaml", "person", WHOLE,
         {"kind": "crowd", "classes": ["person"], "min_count": 10, "min_dwell_s": 3},
         zone_options={"tiles": [3, 2]}),
    Case("indoor_people", "indoor_people_walk_768x432_10fps.mp4", "indoor_people.yaml",
         "person", [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]],
         # end_after_s 2: each visit is its own event (the gaps between visits are 2.9-5.9 s).
         {"kind": "intrusion", "classes": ["person"], "min_dwell_s": 3, "end_after_s": 2}),
    Case("road_cart", "cctv_road_cart_320x240_3fps.mp4", "road_cart.yaml", "person",
         [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]],
         {"kind": "intrusion", "classes": ["person"], "min_dwell_s": 2}),
]


def analyse(case: Case, model: ModelSettings, every_frame: bool,
            zone_options: dict[str, Any] | None = None) -> tuple[list[dict], float]:
    """Run the analyze pipeline on the case's input; returns its JSON lines and wall seconds."""
    url = str(FOOTAGE / case.source)
    zone = {"id": "zone", "polygon": case.zone, "rules": [{"type": "presence", **case.rule}],
            **case.zone_options, **(zone_options or {})}
    config = parse_config({"model": model.model_dump(exclude_unset=True),
                           "incident_cooldown_s": COOLDOWN_S,
                           "cameras": [{"id": case.name, "url": url, "zones": [zone]}]},
                          f"<{case.name}>")
    out = io.StringIO()
    start = time.perf_counter()
    run_analysis(url, config, out, every_frame=every_frame)
    wall = time.perf_counter() - start
    return [json.loads(line) for line in out.getvalue().splitlines()], wall


def mot17_case(case: Case, model: ModelSettings) -> dict[str, Any]:
    folder = FOOTAGE / "mot17_09_mini"
    gt, _, _ = load_mot_gt(folder)
    gt_unclipped, _, _ = load_mot_gt(folder, clip=False)
    out: dict[str, Any] = {}
    for variant, options in (("core", {}), ("ablation_tiles_off", {"tiles": "off"})):
        lines, wall = analyse(case, model, True, options)
        frames = [[d["box"] for d in x["detections"] if d["cls"] == case.cls]
                  for x in lines if x["type"] == "frame"]
        out[variant] = {**score_mot(frames, gt), "wall_s": round(wall, 2),
                        "unclipped_gt": precision_recall(*_sum_mot(frames, gt_unclipped))}
    images = [cv2.imread(str(p)) for p in sorted((folder / "img1").glob("*.jpg"))]
    for threshold in sorted({model.conf, 0.3}):
        detector = create_detector(model.name, conf=threshold)
        full = [[list(d.box) for d in detector.detect(im, classes={0})] for im in images]
        out[f"baseline_full_frame_conf_{threshold}"] = score_mot(full, gt)
        out[f"baseline_naive_tiles_3x2_nms_conf_{threshold}"] = score_mot(
            [naive_tiles(detector, im) for im in images], gt)
    core = out["core"]
    out["target"] = {"recall": 0.85, "precision": 0.90,
                     "met": bool(core["recall"] is not None and core["recall"] >= 0.85
                                 and core["precision"] is not None
                                 and core["precision"] >= 0.90)}
    return out


def _sum_mot(frames: list[list[list[float]]], gt: dict[int, list[MotRow]]
             ) -> tuple[int, int, int]:
    totals = [score_mot_frame(b, gt.get(i + 1, [])) for i, b in enumerate(frames)]
    return tuple(int(sum(t[k] for t in totals)) for k in range(3))  # type: ignore[return-value]


def naive_tiles(detector: Detector, image: np.ndarray) -> list[list[float]]:
    """Baseline: 3x2 tiles (no overlap, no overview), boxes shifted back and merged by plain
    class-aware NMS: what tiling gives without fragment handling."""
    h, w = image.shape[:2]
    boxes, scores = [], []
    for region in grid_tiles((0, 0, w, h), 3, 2, 0.0):
        x, y = region.box[:2]
        for d in detector.detect(region.crop(image), classes={0}):
            boxes.append([d.box[0] + x, d.box[1] + y, d.box[2] + x, d.box[3] + y])
            scores.append(d.score)
    if not boxes:
        return []
    kept = nms(Candidates(np.array(boxes, np.float32), np.array(scores, np.float32),
                          np.zeros(len(boxes), np.int32)), 0.45)
    return kept.boxes.tolist()


def clip_case(case: Case, model: ModelSettings) -> dict[str, Any]:
    labels = read_clip_labels(LABELS / str(case.label_file))
    out: dict[str, Any] = {}
    for mode in case.modes:
        lines, wall = analyse(case, model, mode == "every_frame")
        summary = lines[-1]
        looked = [x for x in lines if x["type"] == "frame"]
        with_detector = sum(1 for x in looked if x.get("look", {}).get("regions"))
        result: dict[str, Any] = {
            "frames_read": summary["frames_read"], "frames_analysed": summary["frames_analysed"],
            "detector_share": round(with_detector / len(looked), 3) if looked else None,
            "wall_s": round(wall, 2),
            "detection": score_presence(lines, labels, case.cls)
            if "present" in labels else None,
            "events": score_events(lines, labels, case.rule, COOLDOWN_S),
        }
        if "counts" in labels:
            result["counts"] = score_counts(lines, labels, case.cls)
        out[mode] = result
    return out


RUNNERS: dict[str, Callable[[Case, ModelSettings], dict[str, Any]]] = {"mot17": mot17_case}


def dataset_case(name: str, model: ModelSettings) -> dict[str, Any]:
    """A shared labelled set through the harness, with the benchmark's threshold."""
    request = EvaluationRequest(sets=[SHARED_SETS[name]], data_dir=DATASETS,
                                split_dir=LABELS / "splits",
                                model=model)
    return evaluate_set(SHARED_SETS[name], request, DetectorCache())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join([*(c.name for c in CASES), *SHARED_SETS]))
    parser.add_argument("--conf", type=float, default=0.5,
                        help="detector score threshold (model.conf of the configuration)")
    parser.add_argument("--model", default=ModelSettings().name,
                        help="manifest model for every case (default: %(default)s)")
    args = parser.parse_args()
    model = ModelSettings(name=args.model, conf=args.conf)
    logging.basicConfig(level=logging.WARNING)
    if not FOOTAGE.is_dir():
        sys.exit(f"shared footage not found at {FOOTAGE} (set GRIDWATCH_FOOTAGE_DIR)")
    cv2.setNumThreads(1)
    wanted = args.cases.split(",")
    result: dict[str, Any] = {"benchmark": "accuracy", "model": model.name,
                              "conf": args.conf, "cases": {}}
    for case in CASES:
        if case.name in wanted:
            result["cases"][case.name] = RUNNERS.get(case.name, clip_case)(case, model)
    for name in SHARED_SETS:
        if name in wanted:
            result["cases"][name] = dataset_case(name, model)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
