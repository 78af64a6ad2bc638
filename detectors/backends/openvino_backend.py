"""OpenVINO CPU backend for the same YOLOX and YOLOv8 ONNX graphs as the onnxruntime backend.

Only the graph execution differs: letterbox, tensor layout, head decoding, NMS and the checks
that a file fits its manifest entry are the onnxruntime backend's own code, so both backends
return the same detections for the same frame (checked on real frames in the tests).

Defaults match the onnxruntime backend's reasoning for many cameras on few cores: one inference
thread, one stream, the latency hint and no CPU pinning, so a detector never holds cores that
decoders and motion need. f32 precision is forced: on CPUs with bf16 support OpenVINO would
otherwise lower precision by itself and drift away from the reference results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.detectors.backends.base import ModelMismatchError
from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.detectors.backends.optional import require
from gridwatch.detectors.backends.yolo_decode import MAX_DETECTIONS
from gridwatch.models.manifest import ModelSpec

log = logging.getLogger(__name__)


class OpenVinoDetector(OnnxDetector):
    """A YOLO ONNX graph compiled by OpenVINO for the CPU; see `Detector`.

    The graph is read and checked through the onnxruntime backend (one reader of shapes and
    metadata for both), whose session is then released: only OpenVINO runs inferences.
    Not thread-safe (one reusable input tensor and infer request): one instance per worker.
    """

    def __init__(
        self,
        spec: ModelSpec | None,
        weights: Path,
        *,
        threads: int = 1,
        conf: float = 0.25,
        nms_iou: float = 0.45,
        max_detections: int = MAX_DETECTIONS,
        class_lists: Iterable[Sequence[str]] = (),
    ) -> None:
        ov = require("openvino", backend="openvino", extra="openvino")
        super().__init__(
            spec, weights, threads=1, conf=conf, nms_iou=nms_iou,
            max_detections=max_detections, class_lists=class_lists,
        )
        del self.session
        self.compiled = compile_for_cpu(ov, weights, threads)
        self._request = self.compiled.create_infer_request()
        log.info("compiled %s for OpenVINO %s CPU with %d thread(s)",
                 self.spec.name, ov.get_version(), threads)

    def infer(self) -> np.ndarray:
        """Run the graph on the prepared tensor; returns the raw head for one image.

        A copy, because OpenVINO reuses its output buffer on the next inference and callers
        may decode later (as with onnxruntime, whose outputs are fresh arrays)."""
        self._request.infer({0: self.input_tensor}, share_inputs=True)
        return self._request.get_output_tensor(0).data[0].copy()


def compile_for_cpu(
    ov: Any, weights: Path, threads: int, input_shape: Sequence[int] | None = None
) -> Any:
    """Compile `weights` with this backend's CPU settings; `input_shape` fixes the shape of a
    dynamic graph (OpenVINO plans static shapes better)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    props = ov.properties
    hint = props.hint
    config = {
        props.inference_num_threads: threads,
        props.streams.num: 1,
        hint.performance_mode: hint.PerformanceMode.LATENCY,
        hint.enable_cpu_pinning: False,
        hint.inference_precision: ov.Type.f32,
    }
    core = ov.Core()
    try:
        model = core.read_model(str(weights))
        if input_shape is not None:
            model.reshape(list(input_shape))
        return core.compile_model(model, "CPU", config)
    except RuntimeError as exc:  # OpenVINO reports every load failure as RuntimeError
        raise ModelMismatchError(f"OpenVINO cannot compile {weights}: {exc}") from exc
