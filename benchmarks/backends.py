"""Detector backends compared in one run on real frames, one JSON object.

Per inference of YOLOX-nano (graph only, tensor already prepared), median wall ms and CPU ms:
- onnxruntime 1 and 2 intra-op threads (1 thread is the baseline: what the service runs);
- OpenVINO 1 and 2 threads (when the openvino package is installed);
- batches of 1, 2 and 4 images through the dynamic-batch copy (ms per image), on both runtimes,
  to decide whether gathering requests across cameras pays on this CPU;
- 320x320 vs 416x416 input through the dynamic-size copy.
Configurations are timed round-robin (one call of each in turn) so that load from other
processes on a shared machine spreads over all of them instead of biasing one.

Also reported: whether OpenVINO's detections match onnxruntime's on the same frames.

Usage: .venv/bin/python benchmarks/backends.py [--rounds 40]
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

from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.detectors.detection import box_iou
from gridwatch.models.manifest import get_model_spec
from gridwatch.models.weights import dynamic_copy, resolve_weights

REPO = Path(__file__).resolve().parent.parent
FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
MODEL = "yolox_nano_coco_416"
BATCHES = (1, 2, 4)


def _frames() -> list[np.ndarray]:
    folder = FOOTAGE / "mot17_09_mini" / "img1"
    frames = [cv2.imread(str(folder / f"{i:06d}.jpg")) for i in range(1, 5)]
    if any(f is None for f in frames):
        sys.exit(f"cannot read MOT17 frames in {folder} (set GRIDWATCH_FOOTAGE_DIR)")
    return frames


def _ort_session(path: Path, threads: int) -> ort.InferenceSession:
    """The same options as the service's backend (no spinning, sequential)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _ort_runner(session: ort.InferenceSession, batch: np.ndarray) -> Callable[[], object]:
    feed = {session.get_inputs()[0].name: batch}
    return lambda: session.run(None, feed)


def _openvino_runner(path: Path, threads: int, batch: np.ndarray) -> Callable[[], object]:
    import openvino

    from gridwatch.detectors.backends.openvino_backend import compile_for_cpu

    request = compile_for_cpu(openvino, path, threads, batch.shape).create_infer_request()
    return lambda: request.infer({0: batch}, share_inputs=True)


def _tensors(frames: list[np.ndarray], size: int) -> np.ndarray:
    """Letterboxed input tensors of all frames at `size`, exactly as the backend prepares them."""
    spec = get_model_spec(MODEL).model_copy(update={"input_size": (size, size)})
    detector = OnnxDetector(spec, dynamic_copy(MODEL))
    out = []
    for frame in frames:
        detector.prepare(frame)
        out.append(detector.input_tensor.copy())
    return np.concatenate(out)


def _round_robin(configs: dict[str, tuple[Callable[[], object], int]], rounds: int) -> dict:
    """{name: (call, images per call)} -> median wall ms and mean CPU ms per image."""
    for call, _ in configs.values():
        for _ in range(3):
            call()
    walls: dict[str, list[float]] = {name: [] for name in configs}
    cpus: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, (call, images) in configs.items():
            cpu = time.process_time()
            start = time.perf_counter()
            call()
            walls[name].append((time.perf_counter() - start) * 1000 / images)
            cpus[name].append((time.process_time() - cpu) * 1000 / images)
    return {
        name: {
            "ms_per_image": round(statistics.median(walls[name]), 2),
            "cpu_ms_per_image": round(statistics.mean(cpus[name]), 2),
            "images_per_call": configs[name][1],
        }
        for name in configs
    }


def _openvino_matches_onnxruntime(frames: list[np.ndarray]) -> dict[str, object]:
    from gridwatch.detectors.backends.factory import create_detector

    reference = create_detector(MODEL, backend="onnxruntime")
    candidate = create_detector(MODEL, backend="openvino")
    same = total = 0
    for frame in frames:
        a, b = reference.detect(frame), candidate.detect(frame)
        total += len(a)
        same += sum(
            any(d.cls_id == e.cls_id and box_iou(d.box, e.box) > 0.9 for e in b) for d in a
        ) if len(a) == len(b) else 0
    return {"onnxruntime_detections": total, "matched_by_openvino": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = _frames()
    static = resolve_weights(MODEL)
    dynamic = dynamic_copy(MODEL)
    t416, t320 = _tensors(frames, 416), _tensors(frames, 320)
    configs: dict[str, tuple[Callable[[], object], int]] = {
        "ort_1thread_416": (_ort_runner(_ort_session(static, 1), t416[:1]), 1),
        "ort_2threads_416": (_ort_runner(_ort_session(static, 2), t416[:1]), 1),
        "ort_1thread_320": (_ort_runner(_ort_session(dynamic, 1), t320[:1]), 1),
    }
    dyn_session = _ort_session(dynamic, 1)
    for n in BATCHES:
        configs[f"ort_1thread_416_batch{n}"] = (_ort_runner(dyn_session, t416[:n]), n)
    try:
        import openvino
    except ImportError:
        openvino = None
    if openvino is not None:
        configs["openvino_1thread_416"] = (_openvino_runner(static, 1, t416[:1]), 1)
        configs["openvino_2threads_416"] = (_openvino_runner(static, 2, t416[:1]), 1)
        configs["openvino_1thread_320"] = (_openvino_runner(dynamic, 1, t320[:1]), 1)
        for n in BATCHES:
            configs[f"openvino_1thread_416_batch{n}"] = (
                _openvino_runner(dynamic, 1, t416[:n]), n
            )
    timings = _round_robin(configs, args.rounds)
    base = timings["ort_1thread_416"]["ms_per_image"]
    for figures in timings.values():
        figures["vs_baseline"] = round(figures["ms_per_image"] / base, 3)
    result = {
        "benchmark": "backends",
        "model": MODEL,
        "frames": "mot17_09_mini 000001-000004 (1920x1080)",
        "rounds": args.rounds,
        "baseline": "ort_1thread_416",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "openvino": openvino.get_version() if openvino is not None else None,
        "timings": timings,
        "load_average_1min": round(os.getloadavg()[0], 2),
        # Decided on CPU time: on one thread it is the work done, and unlike wall time it is
        # not inflated when other processes take turns on the cores.
        "batching_pays_on_1_thread": {
            runtime: timings[f"{runtime}_1thread_416_batch4"]["cpu_ms_per_image"]
            < 0.9 * timings[f"{runtime}_1thread_416_batch1"]["cpu_ms_per_image"]
            for runtime in ("ort", "openvino")
            if f"{runtime}_1thread_416_batch4" in timings
        },
    }
    if openvino is not None:
        result["openvino_vs_onnxruntime_detections"] = _openvino_matches_onnxruntime(frames)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
