"""onnxruntime CPU backend for YOLOX and YOLOv8 graphs.

Defaults are tuned for many cameras on few cores: one intra-op thread and no spinning, because
spinning workers burn a core between inferences that decoders and motion need, and several
detector instances share the machine. Every buffer of the hot path (canvas, input tensor, grids)
is allocated once.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from gridwatch.detectors.backends.base import ModelMismatchError
from gridwatch.detectors.backends.letterbox import Letterboxer, LetterboxGeometry
from gridwatch.detectors.backends.yolo_decode import DECODERS, MAX_DETECTIONS, Decoder, nms
from gridwatch.detectors.detection import Detection
from gridwatch.models.manifest import ModelSpec

log = logging.getLogger(__name__)


class OnnxDetector:
    """A YOLO graph run by onnxruntime on the CPU; see `gridwatch.detectors.backends.base.Detector`.

    Not thread-safe: the canvas and input tensor are reused, so use one instance per worker.
    """

    def __init__(
        self,
        spec: ModelSpec | None,
        weights: Path,
        *,
        threads: int = 1,
        conf: float = 0.25,
        nms_iou: float = 0.45,
        spinning: bool = False,
        max_detections: int = MAX_DETECTIONS,
        class_lists: Iterable[Sequence[str]] = (),
    ) -> None:
        """`spec=None` reads the spec from the graph itself (for files not in the manifest);
        class names then come from Ultralytics metadata or a class list of the right length."""
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.session = open_session(weights, threads, spinning)
        self.spec = spec or spec_from_graph(self.session, weights, class_lists)
        self.names = list(self.spec.names)
        self.input_size = self.spec.input_size
        self.conf = conf
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        if self.spec.output_format not in DECODERS:
            raise ModelMismatchError(
                f"model {self.spec.name!r} ({weights}) has a {self.spec.output_format} head, "
                f"which this backend does not decode; it decodes {', '.join(DECODERS)}"
            )
        self.decoder: Decoder = DECODERS[self.spec.output_format](self.spec.input_size)
        _check_graph(self.session, self.spec, self.decoder, weights)
        self._input_name = self.session.get_inputs()[0].name
        self._output_names = [self.session.get_outputs()[0].name]
        self._letterbox = Letterboxer(
            self.spec.input_size, self.spec.letterbox, self.spec.pad_value
        )
        width, height = self.spec.input_size
        self.input_tensor = np.empty((1, 3, height, width), dtype=np.float32)
        self._class_index: dict[frozenset[int], np.ndarray] = {}
        log.info(
            "loaded %s (%s, %dx%d) from %s with %d thread(s)",
            self.spec.name, self.spec.output_format, width, height, weights, threads,
        )

    def detect(
        self, image_bgr: np.ndarray, conf: float | None = None, classes: set[int] | None = None
    ) -> list[Detection]:
        geometry = self.prepare(image_bgr)
        return self.decode(self.infer(), geometry, conf, classes)

    def prepare(self, image_bgr: np.ndarray) -> LetterboxGeometry:
        """Letterbox and normalise into the reusable input tensor (stage 1 of `detect`)."""
        canvas, geometry = self._letterbox(as_bgr(image_bgr))
        fill_tensor(canvas, self.input_tensor[0], self.spec)
        return geometry

    def infer(self) -> np.ndarray:
        """Run the graph on the prepared tensor; returns the raw head for one image."""
        return self.session.run(self._output_names, {self._input_name: self.input_tensor})[0][0]

    def decode(
        self,
        output: np.ndarray,
        geometry: LetterboxGeometry,
        conf: float | None = None,
        classes: set[int] | None = None,
    ) -> list[Detection]:
        """Raw head -> detections in source pixels (score filter, class-aware NMS, clip)."""
        threshold = self.conf if conf is None else conf
        candidates = self.decoder(output, threshold, self._class_subset(classes))
        candidates = nms(candidates, self.nms_iou, self.max_detections)
        boxes = geometry.to_source(candidates.boxes)
        names = self.names
        return [
            Detection(names[cls_id], cls_id, score, (x1, y1, x2, y2))
            for (x1, y1, x2, y2), score, cls_id in zip(
                boxes.tolist(), candidates.scores.tolist(), candidates.class_ids.tolist(),
                strict=True,
            )
            if x2 > x1 and y2 > y1
        ]

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        conf: float | None = None,
        classes: set[int] | None = None,
    ) -> list[list[Detection]]:
        """One run per image: the shipped graphs have a static batch of 1, and batching is no
        cheaper per frame on one thread anyway (measured)."""
        return [self.detect(image, conf, classes) for image in images]

    def _class_subset(self, classes: set[int] | None) -> np.ndarray | None:
        if classes is None:
            return None
        key = frozenset(classes)
        subset = self._class_index.get(key)
        if subset is None:
            subset = self._class_index[key] = class_id_array(key, self.names, self.spec.name)
        return subset


def class_id_array(classes: frozenset[int], names: Sequence[str], model: str) -> np.ndarray:
    """Sorted class ids as an array, after checking that `model` has every one of them."""
    bad = sorted(c for c in classes if not 0 <= c < len(names))
    if bad or not classes:
        raise ValueError(
            f"classes must be ids in 0..{len(names) - 1} of {model}, got {sorted(classes)}"
        )
    return np.array(sorted(classes), dtype=np.int64)


def fill_tensor(canvas: np.ndarray, out: np.ndarray, spec: ModelSpec) -> None:
    """A BGR uint8 HxWx3 canvas into one CHW float32 slot of an input tensor, in the colour
    order and value range the graph expects."""
    chw = canvas.transpose(2, 0, 1)
    if spec.input_colour == "rgb":
        chw = chw[::-1]
    if spec.input_range == "0-1":
        np.multiply(chw, np.float32(1 / 255), out=out)
    else:
        np.copyto(out, chw)


def open_session(weights: Path, threads: int, spinning: bool) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    allow = "1" if spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", allow)
    opts.add_session_config_entry("session.inter_op.allow_spinning", allow)
    try:
        return ort.InferenceSession(str(weights), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelMismatchError(f"cannot load ONNX model {weights}: {exc}") from exc


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept BGR uint8 HxWx3, and grey HxW / HxWx1 (mono cameras); reject anything else."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(
            "detector input must be a non-empty uint8 BGR image, got "
            f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        )
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    raise ValueError(f"detector input must be HxWx3 BGR or HxW grey, got shape {image.shape}")


def static_dim(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _check_graph(
    session: ort.InferenceSession, spec: ModelSpec, decoder: Decoder, weights: Path
) -> None:
    """Fail at load, naming both sides, when the file and its spec disagree: a wrong input size
    or head would otherwise run and silently produce garbage boxes."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    width, height = spec.input_size
    wanted_in = [1, 3, height, width]
    shape_in = inputs[0].shape
    if len(inputs) != 1 or len(shape_in) != 4 or any(
        static_dim(got) not in (None, want) for got, want in zip(shape_in, wanted_in, strict=True)
    ):
        raise ModelMismatchError(
            f"model file {weights} takes input {[i.shape for i in inputs]} but model "
            f"{spec.name!r} expects {wanted_in} (batch, channels, height, width)"
        )
    wanted_out = [1, *decoder.expected_output_shape(len(spec.names))]
    shape_out = outputs[0].shape
    if len(shape_out) != 3 or any(
        static_dim(got) not in (None, want) for got, want in zip(shape_out, wanted_out, strict=True)
    ):
        raise ModelMismatchError(
            f"model file {weights} outputs {shape_out} but a {spec.output_format} head at "
            f"{width}x{height} with {len(spec.names)} classes gives {wanted_out}"
        )


def spec_from_graph(
    session: ort.InferenceSession, weights: Path, class_lists: Iterable[Sequence[str]] = ()
) -> ModelSpec:
    """Describe an .onnx file that is not in the manifest from its shapes and metadata.

    YOLOv8 heads are [4 + classes, anchors] and YOLOX heads [anchors, 5 + classes]; anchors
    always outnumber classes, which tells the two apart.
    """
    shape_in = session.get_inputs()[0].shape
    shape_out = session.get_outputs()[0].shape
    found = [static_dim(d) for d in (*shape_in[2:], *shape_out[1:])]
    dims = [d for d in found if d is not None]
    if len(shape_in) != 4 or len(shape_out) != 3 or len(dims) != 4:
        raise ModelMismatchError(
            f"model file {weights} is not in the manifest and its shapes {shape_in} -> "
            f"{shape_out} are not a static YOLO detector; add an entry to models/manifest.yaml"
        )
    height, width, rows, cols = dims
    is_yolov8 = cols > rows
    num_classes = rows - 4 if is_yolov8 else cols - 5
    names = _names_from_metadata(session) or next(
        (tuple(c) for c in class_lists if len(c) == num_classes), None
    )
    if names is None or len(names) != num_classes:
        raise ModelMismatchError(
            f"model file {weights} has {num_classes} classes but no class names that fit; "
            "add an entry to models/manifest.yaml"
        )
    log.info("model file %s is not in the manifest; read its spec from the graph", weights)
    return ModelSpec(
        name=weights.stem,
        file=weights.name,
        input_size=(width, height),
        output_format="yolov8" if is_yolov8 else "yolox",
        input_colour="rgb" if is_yolov8 else "bgr",
        input_range="0-1" if is_yolov8 else "0-255",
        letterbox="centre" if is_yolov8 else "top_left",
        names=names,
    )


def _names_from_metadata(session: ort.InferenceSession) -> tuple[str, ...] | None:
    """Ultralytics exports store {id: name} as a Python literal under 'names'."""
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    if not raw:
        return None
    try:
        mapping = ast.literal_eval(raw)
        return tuple(mapping[i] for i in range(len(mapping)))
    except (ValueError, SyntaxError, KeyError, TypeError):
        log.warning("ignoring unreadable 'names' metadata: %.80s", raw)
        return None
