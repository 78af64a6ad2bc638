"""Per-inference latency of the shipped detectors on a real 1080p frame, one JSON object.

For each model: median wall ms of the whole `detect()` and of its stages (letterbox + tensor,
graph, decode + NMS; for DETR graphs decoding is the score filter), and CPU ms per inference,
with our settings (1 intra-op thread, no spinning). Baseline, measured in the same run: the
same graph in an onnxruntime session with default options (all cores, spinning on), to show
what those settings trade.

Usage: .venv/bin/python benchmarks/model_latency.py [--runs 30] [--image PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.backends.detr_backend import IMAGES, SIZES, DetrDetector
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.models.manifest import load_manifest
from gridwatch.models.weights import resolve_weights

REPO = Path(__file__).resolve().parent.parent
FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
DEFAULT_IMAGE = FOOTAGE / "mot17_09_mini" / "img1" / "000001.jpg"


def _timed(fn: Callable[[], object], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median wall ms and mean CPU ms (all threads of this process) per call."""
    for _ in range(warmup):
        fn()
    walls = []
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - start) * 1000)
    cpu_ms = (time.process_time() - cpu_start) * 1000 / runs
    return {"median_ms": round(statistics.median(walls), 3), "cpu_ms": round(cpu_ms, 3)}


def _stages(detector: Detector, image: np.ndarray
            ) -> tuple[Callable[[], object], Callable[[], object], Callable[[], object], dict]:
    """prepare, graph and decode of one image as separate calls, and the graph's feed."""
    if isinstance(detector, DetrDetector):
        geometries = detector.prepare([image])
        labels, boxes, scores = detector.infer(1)
        feed = {IMAGES: detector.input_tensor[:1], SIZES: detector.sizes_tensor[:1]}
        return (lambda: detector.prepare([image]), lambda: detector.infer(1),
                lambda: detector.decode(labels[0], boxes[0], scores[0], geometries[0]), feed)
    assert isinstance(detector, OnnxDetector)
    geometry = detector.prepare(image)
    output = detector.infer()
    feed = {detector.session.get_inputs()[0].name: detector.input_tensor}
    return (lambda: detector.prepare(image), detector.infer,
            lambda: detector.decode(output, geometry), feed)


def measure(name: str, image: np.ndarray, runs: int) -> dict[str, object]:
    weights = resolve_weights(name)
    detector = create_detector(name, threads=1)
    prepare, infer, decode, feed = _stages(detector, image)
    default_session = ort.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    return {
        "input_size": list(detector.input_size),
        "detections": len(detector.detect(image)),
        "detect": _timed(lambda: detector.detect(image), runs),
        "prepare": _timed(prepare, runs),
        "infer": _timed(infer, runs),
        "decode": _timed(decode, runs),
        "baseline_ort_default_session_infer": _timed(lambda: default_session.run(None, feed), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    args = parser.parse_args()
    image = cv2.imread(str(args.image))
    if image is None:
        sys.exit(f"cannot read image {args.image} (set GRIDWATCH_FOOTAGE_DIR or pass --image)")
    cv2.setNumThreads(1)
    result = {
        "benchmark": "model_latency",
        "image": str(args.image),
        "image_size": [image.shape[1], image.shape[0]],
        "runs": args.runs,
        "threads": 1,
        "cpus": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "models": {name: measure(name, image, args.runs) for name in load_manifest().models},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
