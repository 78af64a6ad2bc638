"""What the detection core costs, measured in one run for each model; prints one JSON object.

Every figure below is given per model (`--models`, default: YOLOX-nano, the baseline and the
shipped default before DEIMv2; DEIMv2 Femto and Atto; the AGPL YOLOv8n int8 as a reference only),
and `summary` puts the per-model means side by side.

- `model`: the raw detector on one crop: `detect()` (letterbox + graph + decode) and the graph
  alone, ms per inference (median wall, mean CPU), and `detect_batch` of 4 crops per crop (one
  graph run for DEIMv2, four for the static-batch YOLO graphs).
- `clips`: each shared clip through `CameraAnalyzer` on the service schedule (5 fps of media
  time, motion gating, crops, sweeps): ms per analysed frame (decode not included, the BGR
  conversion of frames that reach the detector included), the share of analysed frames that
  reach the detector, inferences per analysed frame. Baseline in the same run: what the core
  did before (one full-frame inference per analysed frame).
- `motion_1080p`: the motion stage on 1080p luma planes (real footage upscaled), against the
  running-average pipeline with an INTER_AREA resize and MOG2, both at 320 px wide.
- `saturated`: every frame reaches the detector (`every_frame` mode, tiles and crops): the CPU
  time of the core per frame against the CPU time of the same detector calls on the same crops
  made directly, interleaved frame by frame; `overhead` is their relative difference (target
  <= 0.15).

CPU times (process_time, the detector runs on one thread) are the robust figures on a shared
machine; wall times are given too.

Usage: .venv/bin/python benchmarks/detect_cost.py [--frames-limit 400] [--models a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.backends.detr_backend import DetrDetector
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.detectors.motion import MotionDetector
from gridwatch.detectors.pipeline import CameraAnalyzer
from gridwatch.ingest.frame import Frame
from gridwatch.ingest.sources import open_source
from gridwatch.settings.rules import PresenceRuleSettings
from gridwatch.settings.stream import StreamSettings
from gridwatch.settings.zones import ZoneSettings

REPO = Path(__file__).resolve().parent.parent
FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
BASELINE = "yolox_nano_coco_416"
MODELS = (BASELINE, "deimv2_femto_coco_416", "deimv2_atto_coco_320", "yolov8n_coco_640_int8")
CONF = 0.5

# Clip, zone polygon, classes and tiles as the accuracy cases configure them.
CLIPS: dict[str, tuple[str, list[tuple[float, float]], list[str], Any]] = {
    "boat": ("fishing_boat_sea_640x360_30fps.mp4",
             [(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)], ["boat"], "auto"),
    "indoor_people": ("indoor_people_walk_768x432_10fps.mp4",
                      [(0.0, 0.2), (1.0, 0.2), (1.0, 1.0), (0.0, 1.0)], ["person"], "auto"),
    "road_cart": ("cctv_road_cart_320x240_3fps.mp4",
                  [(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)], ["person"], "auto"),
    "hall_crowd": ("crowd_hall_topdown_1280x720.avi",
                   [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)], ["person"], [3, 2]),
}


def zone(polygon: list[tuple[float, float]], classes: list[str], tiles: Any) -> ZoneSettings:
    return ZoneSettings(id="zone", polygon=polygon, tiles=tiles,
                    rules=[PresenceRuleSettings(classes=classes, min_dwell_s=2)])


def frames(path: Path, limit: int | None = None) -> Iterator[Frame]:
    source = open_source(str(path), StreamSettings(realtime=False, loop=False), camera_id="b")
    try:
        for i, frame in enumerate(source):
            if limit is not None and i >= limit:
                return
            yield frame
    finally:
        source.close()


def _ms(values: list[float]) -> float | None:
    return round(statistics.fmean(values) * 1000, 3) if values else None


def _timed(fn: Callable[[], object], runs: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    walls = []
    cpu0 = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return {"median_ms": round(statistics.median(walls) * 1000, 3),
            "cpu_ms": round((time.process_time() - cpu0) * 1000 / runs, 3)}


def _graph_only(detector: Detector, crop: np.ndarray) -> Callable[[], object]:
    """The graph run on a prepared input, without conversion or decoding."""
    if isinstance(detector, DetrDetector):
        detector.prepare([crop])
        return lambda: detector.infer(1)
    assert isinstance(detector, OnnxDetector)
    detector.prepare(crop)
    return detector.infer


def model_cost(detector: Detector, runs: int) -> dict[str, Any]:
    image = cv2.imread(str(FOOTAGE / "mot17_09_mini" / "img1" / "000001.jpg"))
    crop = image[300:900, 1000:1600]
    crops = [crop, image[0:600, 0:600], image[480:1080, 1320:1920], image[200:800, 600:1200]]
    batch = _timed(lambda: detector.detect_batch(crops, conf=CONF), runs)
    return {"input_size": list(detector.input_size),
            "detect": _timed(lambda: detector.detect(crop, conf=CONF), runs),
            "infer": _timed(_graph_only(detector, crop), runs),
            "detect_batch_4_per_crop": {k: round(v / len(crops), 3) for k, v in batch.items()}}


def clip_cost(detector: Detector, name: str, limit: int | None) -> dict[str, Any]:
    file, polygon, classes, tiles = CLIPS[name]
    analyzer = CameraAnalyzer(name, [zone(polygon, classes, tiles)], detector,
                              analysis_fps=5.0, conf=CONF)
    class_ids = {detector.names.index(c) for c in classes}
    core_cpu, core_wall, base_cpu = [], [], []
    with_detector = inferences = 0
    for frame in frames(FOOTAGE / file, limit):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = analyzer.process(frame)
        if result is None:
            continue
        core_cpu.append(time.process_time() - cpu0)
        core_wall.append(time.perf_counter() - wall0)
        assert result.look is not None
        if result.look.regions:
            with_detector += 1
            inferences += len(result.look.regions)
        image = frame.bgr()
        cpu0 = time.process_time()
        detector.detect(image, conf=CONF, classes=class_ids)
        base_cpu.append(time.process_time() - cpu0)
    n = len(core_cpu)
    return {
        "analysed_frames": n,
        "detector_share": round(with_detector / n, 3) if n else None,
        "inferences_per_frame": round(inferences / n, 3) if n else None,
        "core_cpu_ms_per_frame": _ms(core_cpu),
        "core_wall_ms_per_frame": _ms(core_wall),
        "motion_ms_ewma": round(analyzer.motion.cost.ewma, 3),
        "baseline_full_frame_every_analysed_frame_cpu_ms": _ms(base_cpu),
    }


def motion_cost(limit: int) -> dict[str, Any]:
    """1080p luma planes made by upscaling the boat clip (real water motion)."""
    grays = []
    for i, frame in enumerate(frames(FOOTAGE / CLIPS["boat"][0])):
        if i % 6 == 0:
            grays.append(cv2.resize(frame.gray(), (1920, 1080), interpolation=cv2.INTER_LINEAR))
        if len(grays) >= limit:
            break
    mask = np.zeros((1080, 1920), np.uint8)
    mask[378:] = 255
    ours = MotionDetector()
    ours.set_zones({"water": mask})
    ours_s = _per_frame(lambda g, t: ours.update(g, t), grays)
    avg: dict[str, np.ndarray] = {}

    def running_average(g: np.ndarray, _t: float) -> None:
        small = cv2.resize(g, (320, 180), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (5, 5), 0)
        if "bg" not in avg:
            avg["bg"] = small.astype(np.float32)
        cv2.accumulateWeighted(small, avg["bg"], 0.05)
        diff = cv2.absdiff(small, cv2.convertScaleAbs(avg["bg"]))
        _, fg = cv2.threshold(diff, 25, 255, cv2.THRESH_BINARY)
        fg = cv2.dilate(fg, None, iterations=2)
        cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)

    mog2 = cv2.createBackgroundSubtractorMOG2(detectShadows=False)

    def mog(g: np.ndarray, _t: float) -> None:
        mog2.apply(cv2.resize(g, (320, 180), interpolation=cv2.INTER_LINEAR))

    return {"frames": len(grays), "source": "boat clip luma upscaled to 1920x1080",
            "ours": ours_s,
            "baseline_running_average_inter_area": _per_frame(running_average, grays),
            "baseline_mog2_320": _per_frame(mog, grays)}


def _per_frame(fn: Callable[[np.ndarray, float], object], grays: list[np.ndarray]
               ) -> dict[str, float]:
    for i, g in enumerate(grays[:5]):
        fn(g, i * 0.2)
    walls = []
    cpu0 = time.process_time()
    for i, g in enumerate(grays):
        start = time.perf_counter()
        fn(g, 1.0 + i * 0.2)
        walls.append(time.perf_counter() - start)
    return {"median_ms": round(statistics.median(walls) * 1000, 3),
            "cpu_ms": round((time.process_time() - cpu0) * 1000 / len(grays), 3)}


def saturated_cost(detector: Detector, limit: int) -> dict[str, Any]:
    """Every frame through the detector: the core's CPU per frame against the same detector
    calls on the same crops, made directly (interleaved, so load changes hit both)."""
    out: dict[str, Any] = {}
    for name, file in (("hall_crowd", CLIPS["hall_crowd"]), ("boat", CLIPS["boat"])):
        path, polygon, classes, tiles = file
        analyzer = CameraAnalyzer(name, [zone(polygon, classes, tiles)], detector,
                                  analysis_fps=None, conf=CONF)
        class_ids = {detector.names.index(c) for c in classes}
        core, raw = [], []
        inferences = 0
        for frame in frames(FOOTAGE / path, limit):
            cpu0 = time.process_time()
            result = analyzer.process(frame)
            core.append(time.process_time() - cpu0)
            assert result is not None and result.look is not None
            crops = [r.crop(frame.bgr()) for r in result.look.regions]
            inferences += len(crops)
            cpu0 = time.process_time()
            detector.detect_batch(crops, conf=min(CONF, analyzer.keep_conf), classes=class_ids)
            raw.append(time.process_time() - cpu0)
        core_s, raw_s = sum(core), sum(raw)
        out[name] = {
            "frames": len(core), "inferences_per_frame": round(inferences / len(core), 3),
            "core_cpu_ms_per_frame": _ms(core), "raw_detector_cpu_ms_per_frame": _ms(raw),
            "overhead": round(core_s / raw_s - 1, 4) if raw_s else None,
        }
    out["target_overhead"] = 0.15
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames-limit", type=int, default=400,
                        help="frames read per clip (the indoor clip has 1394)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"manifest models, comma-separated (baseline: {BASELINE})")
    args = parser.parse_args()
    if not FOOTAGE.is_dir():
        sys.exit(f"shared footage not found at {FOOTAGE} (set GRIDWATCH_FOOTAGE_DIR)")
    cv2.setNumThreads(1)
    result: dict[str, Any] = {
        "benchmark": "detect_cost", "baseline": BASELINE, "conf": CONF,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "frames_limit_per_clip": args.frames_limit,
        "motion_1080p": motion_cost(60),
        "models": {},
    }
    for name in args.models.split(","):
        detector = create_detector(name, conf=CONF)
        result["models"][name] = {
            "model_cost": model_cost(detector, args.runs),
            "clips_service_schedule": {clip: clip_cost(detector, clip, args.frames_limit)
                                       for clip in CLIPS},
            "saturated": saturated_cost(detector, 60),
        }
    result["summary"] = summary(result["models"])
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


def summary(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: CPU ms of one inference, the core's mean CPU ms per analysed frame over the
    clips on the service schedule and in `every_frame` mode, each also as a ratio to the
    baseline's (when it ran)."""
    rows: dict[str, dict[str, Any]] = {}
    for name, m in models.items():
        service = [c["core_cpu_ms_per_frame"] for c in m["clips_service_schedule"].values()]
        saturated = [c["core_cpu_ms_per_frame"] for k, c in m["saturated"].items()
                     if isinstance(c, dict)]
        rows[name] = {"infer_cpu_ms": m["model_cost"]["infer"]["cpu_ms"],
                      "service_core_cpu_ms_per_frame": round(statistics.fmean(service), 3),
                      "every_frame_core_cpu_ms_per_frame": round(statistics.fmean(saturated), 3)}
    base = rows.get(BASELINE)
    if base is not None:
        for row in rows.values():
            for key in list(row):
                row[f"{key}_vs_baseline"] = round(row[key] / base[key], 3) if base[key] else None
    return rows


if __name__ == "__main__":
    main()
