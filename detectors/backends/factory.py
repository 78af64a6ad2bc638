"""Build a detector from a model name (or .onnx path) and a backend name.

Backends register a builder in `BACKENDS`; OpenVINO or Ultralytics backends slot in there with
the same signature, and the rest of the pipeline only ever sees the `Detector` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from detectors.backends.base import Detector, UnknownBackendError
from detectors.backends.onnx_backend import OnnxDetector
from models.manifest import Manifest, ModelSpec, load_manifest
from models.weights import is_path_like, resolve_weights

BackendBuilder = Callable[..., Detector]


def _onnxruntime(
    spec: ModelSpec | None, weights: Path, manifest: Manifest, **options: Any
) -> Detector:
    return OnnxDetector(spec, weights, class_lists=manifest.class_lists.values(), **options)


BACKENDS: dict[str, BackendBuilder] = {"onnxruntime": _onnxruntime}


def create_detector(
    model_name_or_path: str | Path,
    model_dir: Path | None = None,
    backend: str = "onnxruntime",
    threads: int = 1,
    conf: float = 0.25,
    nms_iou: float = 0.45,
) -> Detector:
    """Resolve (and verify, or fetch) the weights, then load them with the named backend."""
    builder = BACKENDS.get(backend)
    if builder is None:
        raise UnknownBackendError(backend, sorted(BACKENDS))
    manifest = load_manifest()
    weights = resolve_weights(model_name_or_path, model_dir, manifest=manifest)
    if is_path_like(model_name_or_path):
        spec: ModelSpec | None = manifest.by_file(weights.name)
    else:
        spec = manifest.get(str(model_name_or_path))
    return builder(spec, weights, manifest, threads=threads, conf=conf, nms_iou=nms_iou)
