"""Ultralytics backend: `.pt` checkpoints (and anything else `ultralytics.YOLO` loads) run by
Ultralytics' own predictor, returned as our `Detection`s.

Ultralytics is AGPL-3.0 and pulls in PyTorch, so it is an optional extra
(`pip install 'gridwatch[ultralytics]'`) and is imported only when this backend is built: the
detection core, the service and `gridwatch analyze` never import it. For production, export the
checkpoint to ONNX (`gridwatch models export`) and run it on onnxruntime or OpenVINO instead.

`YOLO_OFFLINE` is set before the import: Ultralytics otherwise looks up releases and sends usage
events over the network, which a camera site does not have and must not do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.detectors.backends.base import ModelMismatchError
from gridwatch.detectors.backends.onnx_backend import as_bgr
from gridwatch.detectors.backends.optional import require
from gridwatch.detectors.backends.yolo_decode import MAX_DETECTIONS
from gridwatch.detectors.detection import Detection
from gridwatch.models.manifest import ModelSpec

log = logging.getLogger(__name__)


def load_ultralytics() -> Any:
    """The `ultralytics` module, offline, or `BackendUnavailableError` naming the extra."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    return require("ultralytics", backend="ultralytics", extra="ultralytics")


class UltralyticsDetector:
    """A YOLO model run by `ultralytics.YOLO.predict` on the CPU; see `Detector`.

    `threads` sets PyTorch's intra-op threads, which are process-wide: do not mix this backend
    with different thread counts in one process.
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
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        ultralytics = load_ultralytics()
        require("torch", backend="ultralytics", extra="ultralytics").set_num_threads(threads)
        try:
            self.model = ultralytics.YOLO(str(weights), task="detect")
        except Exception as exc:  # Ultralytics raises assorted errors for unreadable files
            raise ModelMismatchError(f"Ultralytics cannot load {weights}: {exc}") from exc
        self.names = model_names(self.model)
        if spec is not None and tuple(self.names) != tuple(spec.names):
            raise ModelMismatchError(
                f"model file {weights} has {len(self.names)} classes ({', '.join(self.names[:5])}"
                f", ...) but model {spec.name!r} expects {len(spec.names)}"
            )
        self.input_size = spec.input_size if spec is not None else model_input_size(self.model)
        self.conf = conf
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        log.info("loaded %s with Ultralytics %s (%dx%d, %d classes, %d thread(s))",
                 weights, ultralytics.__version__, *self.input_size, len(self.names), threads)

    def detect(
        self, image_bgr: np.ndarray, conf: float | None = None, classes: set[int] | None = None
    ) -> list[Detection]:
        return self.detect_batch([image_bgr], conf, classes)[0]

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        conf: float | None = None,
        classes: set[int] | None = None,
    ) -> list[list[Detection]]:
        """Ultralytics letterboxes each image itself (centred, 114 pad, its own rounding), so
        boxes come back in the pixels of the image passed in."""
        if not images:
            return []
        width, height = self.input_size
        results = self.model.predict(
            [as_bgr(image) for image in images],
            conf=self.conf if conf is None else conf,
            iou=self.nms_iou,
            classes=self._class_list(classes),
            imgsz=(height, width),
            max_det=self.max_detections,
            device="cpu",
            verbose=False,
        )
        return [self._detections(result.boxes) for result in results]

    def _detections(self, boxes: Any) -> list[Detection]:
        xyxy = boxes.xyxy.cpu().numpy().tolist()
        scores = boxes.conf.cpu().numpy().tolist()
        ids = boxes.cls.cpu().numpy().astype(np.int64).tolist()
        return [
            Detection(self.names[cls_id], cls_id, score, (x1, y1, x2, y2))
            for (x1, y1, x2, y2), score, cls_id in zip(xyxy, scores, ids, strict=True)
            if x2 > x1 and y2 > y1
        ]

    def _class_list(self, classes: set[int] | None) -> list[int] | None:
        if classes is None:
            return None
        if not classes or any(not 0 <= c < len(self.names) for c in classes):
            raise ValueError(
                f"classes must be ids in 0..{len(self.names) - 1}, got {sorted(classes)}"
            )
        return sorted(classes)


def model_names(model: Any) -> list[str]:
    """Class names in id order from Ultralytics' {id: name} mapping."""
    names = model.names
    return [names[i] for i in range(len(names))] if isinstance(names, dict) else list(names)


def model_input_size(model: Any) -> tuple[int, int]:
    """(width, height) the checkpoint was trained or exported at; Ultralytics' default 640."""
    imgsz = model.overrides.get("imgsz") or 640
    if isinstance(imgsz, int):
        return imgsz, imgsz
    height, width = imgsz
    return int(width), int(height)
