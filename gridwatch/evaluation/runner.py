"""Run the detection core on labelled stills and score what it reports.

Every image goes through a fresh `CameraAnalyzer` built by `analyzer_from_settings` (the
builder `gridwatch analyze` uses), as one frame in every-frame mode: the zone sweep with its
tiles, the merge and the score thresholds are a deployment's. A fresh analyzer per image,
because stills are unrelated pictures: nothing known in one may be carried into the next.

Variants scored in one run: `pipeline` (the configuration given), `baseline_main_defaults`
(the pipeline with the built-in defaults, left out when the configuration is those defaults)
and `baseline_raw_model` (one inference of the configured model on the whole image, no tiles).
Average precision comes from a second pass with the score threshold lowered to `AP_CONF`, so
the ranking reaches boxes the operating threshold drops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.backends.factory import detector_from_settings
from gridwatch.detectors.detection import Detection
from gridwatch.detectors.pipeline import analyzer_from_settings
from gridwatch.evaluation import scoring
from gridwatch.evaluation.datasets import (
    BoxedImage,
    CountedImage,
    DatasetError,
    read_head_points,
    read_yolo_set,
)
from gridwatch.evaluation.scoring import ScoredBoxes
from gridwatch.evaluation.sets import SetSpec
from gridwatch.evaluation.splits import read_split, select
from gridwatch.ingest.frame import Frame
from gridwatch.settings.camera import CameraSettings
from gridwatch.settings.model import ModelSettings
from gridwatch.settings.rules import PresenceRuleSettings
from gridwatch.settings.zones import ZoneSettings

#: Score threshold of the ranking pass behind average precision.
AP_CONF = 0.05
WHOLE_IMAGE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
EVAL_CAMERA = "evaluate"

LabelledImage = BoxedImage | CountedImage


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of producing boxes for an image: the pipeline as configured, or a baseline."""

    name: str
    model: ModelSettings
    zones: tuple[ZoneSettings, ...] | None  # None: raw model on the whole image


@dataclass(slots=True)
class ImageResult:
    """What one variant reported on one image: boxes at the operating threshold, boxes of
    the ranking pass (None when AP is off) and the people counted in the zones."""

    operating: list[Detection]
    ranking: list[Detection] | None
    people: int


@dataclass(slots=True)
class EvaluationRequest:
    sets: Sequence[SetSpec]
    data_dir: Path
    split_dir: Path
    splits: Sequence[str] = ("dev", "val")
    model: ModelSettings = field(default_factory=ModelSettings)
    camera: CameraSettings | None = None
    limit: int | None = None
    average_precision: bool = True
    baselines: bool = True


def whole_image_zone(classes: Sequence[str]) -> ZoneSettings:
    """The zone used when no camera is named: the whole image, default sweep options, a
    presence rule on the set's classes (which also restricts the detector to them)."""
    rule = PresenceRuleSettings(kind="presence", classes=list(classes), min_dwell_s=0.0)
    return ZoneSettings(id="image", polygon=WHOLE_IMAGE, rules=[rule])


def variants(spec: SetSpec, request: EvaluationRequest) -> list[Variant]:
    default_zones = (whole_image_zone(spec.pipeline_classes),)
    zones = tuple(request.camera.zones) if request.camera is not None else default_zones
    out = [Variant("pipeline", request.model, zones)]
    if request.baselines:
        defaults = ModelSettings()
        if (request.model, zones) != (defaults, default_zones):
            out.append(Variant("baseline_main_defaults", defaults, default_zones))
        out.append(Variant("baseline_raw_model", request.model, None))
    return out


class DetectorCache:
    """One loaded detector per (model settings, threshold): loading a graph costs more than
    analysing an image."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, float], Detector] = {}

    def get(self, model: ModelSettings, conf: float) -> Detector:
        key = (model.model_dump_json(), conf)
        if key not in self._loaded:
            self._loaded[key] = detector_from_settings(model, conf=conf)
        return self._loaded[key]


def load_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    return image


def run_pipeline(image: np.ndarray, zones: Sequence[ZoneSettings], model: ModelSettings,
                 detector: Detector) -> tuple[list[Detection], int]:
    """The core's boxes for one still, and the people its zones counted."""
    analyzer = analyzer_from_settings(EVAL_CAMERA, zones, model, detector, analysis_fps=None)
    result = analyzer.process(Frame.from_bgr(EVAL_CAMERA, 0, 0.0, time.time(), image))
    if result is None:
        raise RuntimeError("every-frame analysis skipped a frame")
    people = sum(counts.get("person", 0) for counts in result.zones.values())
    return result.detections, people


def run_raw(image: np.ndarray, classes: Sequence[str], detector: Detector
            ) -> list[Detection]:
    names = list(detector.names)
    wanted = {names.index(c) for c in classes if c in names}
    return detector.detect(image, classes=wanted)


def analyse_image(image: np.ndarray, spec: SetSpec, variant: Variant, cache: DetectorCache,
                  average_precision: bool) -> ImageResult:
    conf = variant.model.conf
    if variant.zones is None:
        ranked = run_raw(image, spec.pipeline_classes, cache.get(variant.model, AP_CONF))
        operating = [d for d in ranked if d.score >= conf]
        people = sum(1 for d in operating if d.cls == "person")
        return ImageResult(operating, ranked if average_precision else None, people)
    operating, people = run_pipeline(image, variant.zones, variant.model,
                                     cache.get(variant.model, conf))
    ranking = None
    if average_precision:
        low = variant.model.model_copy(update={"conf": AP_CONF})
        ranking, _ = run_pipeline(image, variant.zones, low, cache.get(low, AP_CONF))
    return ImageResult(operating, ranking, people)


def _category_boxes(detections: Sequence[Detection], names: frozenset[str]) -> ScoredBoxes:
    chosen = [d for d in detections if d.cls in names]
    return ScoredBoxes(np.array([d.box for d in chosen], dtype=np.float64).reshape(-1, 4),
                       np.array([d.score for d in chosen], dtype=np.float64))


def _target_boxes(image: BoxedImage, category: str) -> ScoredBoxes:
    mask = np.array([c == category for c in image.categories], dtype=bool)
    return ScoredBoxes(image.boxes[mask] if len(mask) else np.zeros((0, 4)))


def score_boxes(spec: SetSpec, images: Sequence[BoxedImage], results: Sequence[ImageResult]
                ) -> dict[str, Any]:
    """Per category (and per width subset): AP50 and precision/recall at the threshold."""
    out: dict[str, Any] = {}
    subsets = {s.name: s for s in spec.width_subsets}
    for name in [*spec.categories, *subsets]:
        subset = subsets.get(name)
        category = subset.category if subset is not None else name
        names = spec.categories[category]
        operating, ranking, targets = [], [], []
        for image, result in zip(images, results, strict=True):
            truth = _target_boxes(image, category)
            op = _category_boxes(result.operating, names)
            rk = _category_boxes(result.ranking, names) if result.ranking is not None else None
            if subset is not None:
                op, kept = scoring.at_least_wide(op, truth, subset.min_width_px)
                if rk is not None:
                    rk, _ = scoring.at_least_wide(rk, truth, subset.min_width_px)
                truth = kept
            operating.append(op)
            targets.append(truth)
            if rk is not None:
                ranking.append(rk)
        entry: dict[str, Any] = {"pipeline_classes": sorted(names),
                                 "at_threshold": scoring.precision_recall(operating, targets)}
        if ranking:
            entry["ap50"] = scoring.ap50(ranking, targets)
        if subset is not None:
            entry["min_width_px"] = subset.min_width_px
        out[name] = entry
    return out


def score_counts(images: Sequence[CountedImage], results: Sequence[ImageResult]
                 ) -> dict[str, Any]:
    return scoring.count_errors([(i.name, i.count, r.people)
                                 for i, r in zip(images, results, strict=True)])


def read_set(spec: SetSpec, data_dir: Path) -> list[LabelledImage]:
    folder = data_dir / spec.name
    if spec.kind == "counts":
        return list(read_head_points(folder))
    return list(read_yolo_set(folder, spec.class_map))


def evaluate_set(spec: SetSpec, request: EvaluationRequest, cache: DetectorCache,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every variant on the images of the requested splits, scored split by split."""
    images = read_set(spec, request.data_dir)
    validation = read_split(request.split_dir / f"{spec.name}.txt")
    chosen = {split: select(images, validation, split)[: request.limit]
              for split in request.splits}
    needed = {i.name: i for part in chosen.values() for i in part}
    out: dict[str, Any] = {"images": {s: len(v) for s, v in chosen.items()}}
    per_variant: dict[str, dict[str, ImageResult]] = {}
    timings: dict[str, float] = {}
    for variant in variants(spec, request):
        start = time.perf_counter()
        per_variant[variant.name] = {
            name: analyse_image(load_image(image.path), spec, variant, cache,
                                request.average_precision and spec.kind == "boxes")
            for name, image in needed.items()
        }
        timings[variant.name] = round(time.perf_counter() - start, 2)
        if progress is not None:
            progress(f"{spec.name}: {variant.name} on {len(needed)} images, "
                     f"{timings[variant.name]} s")
    for split, part in chosen.items():
        out[split] = {}
        for name, results in per_variant.items():
            rows = [results[i.name] for i in part]
            if spec.kind == "counts":
                out[split][name] = score_counts([i for i in part
                                                 if isinstance(i, CountedImage)], rows)
            else:
                out[split][name] = score_boxes(spec, [i for i in part
                                                      if isinstance(i, BoxedImage)], rows)
    if "val" in out:
        out["targets"] = targets_met(spec, out["val"])
    out["wall_s"] = timings
    return out


def targets_met(spec: SetSpec, validation: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the set against each variant's validation figures."""
    rows = []
    for target in spec.targets:
        for variant, figures in validation.items():
            if target.max_count_error is not None:
                error = figures.get("mean_abs_error_fraction")
                met = error is not None and error <= target.max_count_error
                rows.append({"category": target.category, "variant": variant,
                             "max_count_error": target.max_count_error, "count_error": error,
                             "met": met})
                continue
            at = figures[target.category]["at_threshold"]
            recall, precision = at["recall"], at["precision"]
            met = (recall is not None and precision is not None
                   and recall >= (target.min_recall or 0.0)
                   and precision >= (target.min_precision or 0.0))
            rows.append({"category": target.category, "variant": variant,
                         "min_recall": target.min_recall, "recall": recall,
                         "min_precision": target.min_precision, "precision": precision,
                         "met": met})
    return rows


def evaluate(request: EvaluationRequest, progress: Callable[[str], None] | None = None
             ) -> dict[str, Any]:
    """The harness's one JSON object: settings used, then each set's figures."""
    cache = DetectorCache()
    return {
        "evaluate": [s.name for s in request.sets],
        "model": request.model.model_dump(mode="json"),
        "zones": "camera " + request.camera.id if request.camera else "whole image, defaults",
        "iou": scoring.IOU, "ap_conf": AP_CONF if request.average_precision else None,
        "sets": {s.name: evaluate_set(s, request, cache, progress) for s in request.sets},
    }
