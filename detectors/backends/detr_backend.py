"""onnxruntime CPU backend for DETR-style graphs (DEIMv2) whose post-processing is in the graph.

Such a graph takes a batch of images stretched to its square input with each image's size, and
returns its final answer: for every image the 300 best (label, box, score) triples, boxes already
in pixels of the size it was given. There is no anchor grid to decode and no NMS to run (the
one-to-one matching of DETR training leaves no duplicates to suppress): a score threshold and a
class filter are all that is left. The graphs have a dynamic batch, so `detect_batch` runs the
regions of a frame in one call.

Session options, input conversion and the stretch geometry are the onnxruntime backend's and the
letterbox module's, so both backends feed and map boxes the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gridwatch.detectors.backends.base import ModelMismatchError
from gridwatch.detectors.backends.letterbox import Letterboxer, LetterboxGeometry
from gridwatch.detectors.backends.onnx_backend import (
    as_bgr,
    class_id_array,
    fill_tensor,
    open_session,
    static_dim,
)
from gridwatch.detectors.detection import Detection
from gridwatch.models.manifest import ModelSpec

log = logging.getLogger(__name__)

#: The graph's inputs and outputs by name, as the DEIMv2 (and RT-DETR, D-FINE) exports call them.
IMAGES, SIZES = "images", "orig_target_sizes"
OUTPUTS = ("labels", "boxes", "scores")


class DetrDetector:
    """A DETR-style graph run by onnxruntime on the CPU; see `Detector`.

    Not thread-safe: the canvas and input tensor are reused, so use one instance per worker.
    """

    def __init__(
        self,
        spec: ModelSpec,
        weights: Path,
        *,
        threads: int = 1,
        conf: float = 0.25,
        spinning: bool = False,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.spec = spec
        self.names = list(spec.names)
        self.input_size = spec.input_size
        self.conf = conf
        self.session = open_session(weights, threads, spinning)
        check_detr_graph(self.session, spec, weights)
        width, height = spec.input_size
        self._letterbox = Letterboxer(spec.input_size, spec.letterbox, spec.pad_value)
        self.input_tensor = np.empty((0, 3, height, width), dtype=np.float32)
        # Boxes are asked for in input pixels; each image's geometry maps them to its own.
        self.sizes_tensor = np.empty((0, 2), dtype=np.int64)
        self._class_index: dict[frozenset[int], np.ndarray] = {}
        log.info("loaded %s (%s, %dx%d) from %s with %d thread(s)",
                 spec.name, spec.output_format, width, height, weights, threads)

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
        """All images in one run of the graph."""
        if not images:
            return []
        geometries = self.prepare(images)
        labels, boxes, scores = self.infer(len(images))
        return [self.decode(labels[i], boxes[i], scores[i], geometry, conf, classes)
                for i, geometry in enumerate(geometries)]

    def prepare(self, images: Sequence[np.ndarray]) -> list[LetterboxGeometry]:
        """Stretch and normalise each image into the reusable batch tensor (grown on demand)."""
        if len(images) > len(self.input_tensor):
            width, height = self.input_size
            self.input_tensor = np.empty((len(images), 3, height, width), dtype=np.float32)
            self.sizes_tensor = np.tile(np.array([[width, height]], np.int64), (len(images), 1))
        geometries = []
        for slot, image in zip(self.input_tensor, images, strict=False):
            canvas, geometry = self._letterbox(as_bgr(image))
            fill_tensor(canvas, slot, self.spec)
            geometries.append(geometry)
        return geometries

    def infer(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the graph on the first `count` prepared images: labels, boxes, scores."""
        labels, boxes, scores = self.session.run(
            list(OUTPUTS), {IMAGES: self.input_tensor[:count], SIZES: self.sizes_tensor[:count]}
        )
        return labels, boxes, scores

    def decode(
        self,
        labels: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        geometry: LetterboxGeometry,
        conf: float | None = None,
        classes: set[int] | None = None,
    ) -> list[Detection]:
        """One image's triples -> detections in its pixels (score and class filter, one class
        per object, clip).

        The graph ranks query-class pairs, so one query can come out several times with the
        same box: a person at 0.33, a dog at 0.27. Like the YOLO decoders' best class per
        anchor, only the best allowed label of each box is kept, so the class filter still
        finds a boat that scored higher as a surfboard."""
        threshold = self.conf if conf is None else conf
        keep = (scores > threshold) & (labels >= 0) & (labels < len(self.names))
        if classes is not None:
            keep &= np.isin(labels, self._class_subset(classes))
        if not keep.any():
            return []
        order = np.argsort(-scores[keep], kind="stable")
        kept_boxes, kept_scores = boxes[keep][order], scores[keep][order]
        kept_labels = labels[keep][order]
        _, first = np.unique(kept_boxes, axis=0, return_index=True)
        best = np.sort(first)
        source = geometry.to_source(kept_boxes[best])
        names = self.names
        return [
            Detection(names[cls_id], cls_id, score, (x1, y1, x2, y2))
            for (x1, y1, x2, y2), score, cls_id in zip(
                source.tolist(), kept_scores[best].tolist(), kept_labels[best].tolist(),
                strict=True,
            )
            if x2 > x1 and y2 > y1
        ]

    def _class_subset(self, classes: set[int]) -> np.ndarray:
        key = frozenset(classes)
        subset = self._class_index.get(key)
        if subset is None:
            subset = self._class_index[key] = class_id_array(key, self.names, self.spec.name)
        return subset


def check_detr_graph(session: ort.InferenceSession, spec: ModelSpec, weights: Path) -> None:
    """Fail at load, naming the file and the spec, when the graph is not the DETR layout the
    spec describes (a YOLO file under a DEIMv2 entry, a different input size)."""
    width, height = spec.input_size
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    image_shape = inputs.get(IMAGES)
    fits = (
        set(inputs) == {IMAGES, SIZES} and set(outputs) == set(OUTPUTS)
        and image_shape is not None and len(image_shape) == 4
        and all(static_dim(got) in (None, want)
                for got, want in zip(image_shape[1:], (3, height, width), strict=True))
    )
    if not fits:
        raise ModelMismatchError(
            f"model file {weights} has inputs {inputs} and outputs {outputs}, but model "
            f"{spec.name!r} ({spec.output_format}) expects inputs {IMAGES} [N, 3, {height}, "
            f"{width}] and {SIZES} [N, 2], outputs {', '.join(OUTPUTS)}"
        )
