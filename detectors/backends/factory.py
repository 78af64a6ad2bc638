"""Build a detector from a model name (or .onnx path) and a backend name.

Backends register a builder in `BACKENDS`, and the rest of the pipeline only ever sees the
`Detector` protocol. With no backend named, the manifest entry's `backend` decides (files that
are not in the manifest run on onnxruntime). OpenVINO and Ultralytics are optional extras: their
backends import them only when built, and say which extra to install when they are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridwatch.detectors.backends.base import Detector, UnknownBackendError
from gridwatch.detectors.backends.detr_backend import DetrDetector
from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.detectors.backends.openvino_backend import OpenVinoDetector
from gridwatch.detectors.backends.ultralytics_backend import UltralyticsDetector
from gridwatch.models.manifest import (
    DEFAULT_BACKEND,
    Manifest,
    ManifestEntry,
    ModelSpec,
    load_manifest,
)
from gridwatch.models.weights import is_path_like, resolve_weights
from gridwatch.settings.model import ModelSettings

BackendBuilder = Callable[..., Detector]
#: Heads run by `DetrDetector` (post-processing inside the graph); the others by `OnnxDetector`.
DETR_FORMATS = frozenset({"deimv2"})


def _onnxruntime(
    spec: ModelSpec | None, weights: Path, manifest: Manifest, **options: Any
) -> Detector:
    if spec is not None and spec.output_format in DETR_FORMATS:
        # The graph returns its final boxes: there is no NMS to tune.
        options.pop("nms_iou", None)
        return DetrDetector(spec, weights, **options)
    return OnnxDetector(spec, weights, class_lists=manifest.class_lists.values(), **options)


def _openvino(
    spec: ModelSpec | None, weights: Path, manifest: Manifest, **options: Any
) -> Detector:
    return OpenVinoDetector(spec, weights, class_lists=manifest.class_lists.values(), **options)


def _ultralytics(
    spec: ModelSpec | None, weights: Path, manifest: Manifest, **options: Any
) -> Detector:
    return UltralyticsDetector(spec, weights, **options)


BACKENDS: dict[str, BackendBuilder] = {
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
    "ultralytics": _ultralytics,
}


def create_detector(
    model_name_or_path: str | Path,
    model_dir: Path | None = None,
    backend: str | None = None,
    threads: int = 1,
    conf: float = 0.25,
    nms_iou: float = 0.45,
    *,
    manifest: Manifest | None = None,
) -> Detector:
    """Resolve (and verify, or fetch) the weights, then load them with the named backend, or
    with the manifest's choice for the model when `backend` is None."""
    if backend is not None and backend not in BACKENDS:
        raise UnknownBackendError(backend, sorted(BACKENDS))
    manifest = manifest or load_manifest()
    weights = resolve_weights(model_name_or_path, model_dir, manifest=manifest)
    if is_path_like(model_name_or_path):
        spec: ModelSpec | None = manifest.by_file(weights.name)
    else:
        spec = manifest.get(str(model_name_or_path))
    chosen = backend or (spec.backend if isinstance(spec, ManifestEntry) else DEFAULT_BACKEND)
    return BACKENDS[chosen](spec, weights, manifest, threads=threads, conf=conf, nms_iou=nms_iou)


def detector_from_settings(model: ModelSettings, *, conf: float | None = None) -> Detector:
    """The detector a `model:` section describes; `conf` overrides its score threshold (the
    evaluation harness lowers it to rank boxes for average precision)."""
    return create_detector(model.path or model.name, model.dir, backend=model.backend,
                           threads=model.threads, conf=model.conf if conf is None else conf)
