"""Dynamic-shape copies of ONNX graphs we trust.

A dynamic copy lets one graph run at a smaller input (YOLOX-nano at 320x320 costs ~60% of 416
here) or on a batch of images. It is written to the user cache, never next to the verified
original, and is checked by running it: each image of a batch must give the original graph's
output, so an edit that changed the maths cannot go unnoticed.

The `onnx` package is needed (`pip install 'gridwatch[onnx]'`); it is not a core dependency.
This module only edits and checks a graph file it is handed: finding and verifying the original
is `gridwatch.models.weights.dynamic_copy`'s part, so the two modules do not import each other.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gridwatch.models.errors import ExportError
from gridwatch.models.fetch import file_sha256

log = logging.getLogger(__name__)

BATCH, HEIGHT, WIDTH, ANCHORS = "batch", "height", "width", "anchors"
# Output of the original vs the copy, same input: float32 reordering noise stays far below this.
MAX_ABS_DIFFERENCE = 1e-3


def write_dynamic_copy(source: Path, target: Path, *, spatial: bool = True) -> Path:
    """Write a copy of the verified graph `source` with a dynamic batch (and, with `spatial`,
    height and width) to `target`, atomically and only once it ran correctly at batch 2."""
    onnx = _require_onnx()
    model = onnx.load(str(source))
    _make_dynamic(onnx, model, spatial)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"dynamic copy of {source} is not a valid ONNX graph: {exc}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx.save(model, str(tmp))
        verify_dynamic_copy(source, tmp, spatial=spatial)
        os.replace(tmp, target)
    except ExportError as exc:
        raise ExportError(
            f"{source} cannot be made dynamic by renaming its dimensions (its graph fixes "
            f"shapes elsewhere; export it dynamic from its checkpoint instead): {exc}"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote dynamic copy of %s to %s (sha256 %s)", source, target, file_sha256(target))
    return target


def _make_dynamic(onnx: Any, model: Any, spatial: bool) -> None:
    """Name the free dimensions and let reshapes copy the batch instead of fixing it at 1.

    Exporters bake the traced batch into Reshape targets such as [1, 85, -1]; ONNX's 0 means
    "this dimension of the input", which keeps the batch. Stored intermediate shapes are
    dropped because they pin the traced sizes; runtimes infer them again."""
    graph = model.graph
    if len(graph.input) != 1:
        raise ExportError(f"expected one image input, the graph has {len(graph.input)}")
    in_dims = graph.input[0].type.tensor_type.shape.dim
    if len(in_dims) != 4:
        raise ExportError(f"expected an NCHW image input, got {len(in_dims)} dimensions")
    names = [BATCH, None, HEIGHT, WIDTH] if spatial else [BATCH, None, None, None]
    for dim, name in zip(in_dims, names, strict=True):
        if name is not None:
            dim.dim_param = name
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        dims[0].dim_param = BATCH
        if spatial:
            for dim in dims[1:]:
                if dim.HasField("dim_value") and dim.dim_value > 255:  # the anchor axis
                    dim.dim_param = ANCHORS
    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in initializers:
            continue
        shape_init = initializers[node.input[1]]
        shape = onnx.numpy_helper.to_array(shape_init)
        if shape.ndim == 1 and shape.size >= 2 and shape[0] == 1:
            shape = shape.copy()
            shape[0] = 0
            shape_init.CopyFrom(onnx.numpy_helper.from_array(shape, shape_init.name))
    del graph.value_info[:]


def verify_dynamic_copy(
    original: Path, copy: Path, *, spatial: bool, seed: int = 0
) -> None:
    """Run both graphs: the copy at batch 2 must give, per image, the original's output at batch
    1; with `spatial` it must also run at a smaller size and give the matching anchor count."""
    reference = _session(original)
    candidate = _session(copy)
    shape = [d if isinstance(d, int) else 1 for d in reference.get_inputs()[0].shape]
    _, channels, height, width = shape
    images = np.random.default_rng(seed).uniform(0, 255, (2, channels, height, width))
    images = images.astype(np.float32)
    expected = [_run(reference, images[i : i + 1])[0] for i in range(2)]
    got = _run(candidate, images)
    if got.shape[0] != 2:
        raise ExportError(f"dynamic copy {copy} returned batch {got.shape[0]} for batch 2")
    for i in range(2):
        diff = float(np.abs(got[i] - expected[i]).max())
        if diff > MAX_ABS_DIFFERENCE:
            raise ExportError(
                f"dynamic copy {copy} differs from {original} on image {i} of a batch of 2 "
                f"(max |difference| {diff:.3g} > {MAX_ABS_DIFFERENCE})"
            )
    if spatial:
        small_h, small_w = (max(32, side * 3 // 4 // 32 * 32) for side in (height, width))
        small = _run(candidate, images[:1, :, :small_h, :small_w])
        if small.shape[1:] == expected[0].shape:
            raise ExportError(
                f"dynamic copy {copy} gives the {width}x{height} output shape at "
                f"{small_w}x{small_h}: its size is not dynamic"
            )


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ExportError(f"cannot load {path}: {exc}") from exc


def _run(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    try:
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    except Exception as exc:  # a shape the graph cannot take surfaces here
        raise ExportError(f"graph rejects input {list(images.shape)}: {exc}") from exc


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ExportError(
            f"making a dynamic graph needs the onnx package ({exc}); "
            "install it with: pip install 'gridwatch[onnx]'"
        ) from exc
    return onnx
