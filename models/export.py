"""Making new graphs from weights we trust: dynamic-shape copies of shipped ONNX graphs, and
Ultralytics `.pt` checkpoints exported to ONNX or OpenVINO with a manifest entry to paste.

A dynamic copy lets one graph run at a smaller input (YOLOX-nano at 320x320 costs ~60% of 416
here) or on a batch of images. It is written to the user cache, never next to the verified
original, and is checked by running it: each image of a batch must give the original graph's
output, so an edit that changed the maths cannot go unnoticed.

The `onnx` package is needed for dynamic copies (`pip install 'gridwatch[onnx]'`) and
Ultralytics for exports (`pip install 'gridwatch[ultralytics]'`); neither is a core dependency.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
import yaml
from gridwatch.models.fetch import file_sha256
from gridwatch.models.manifest import Manifest, load_manifest
from gridwatch.models.weights import cache_dir, resolve_weights

log = logging.getLogger(__name__)

BATCH, HEIGHT, WIDTH, ANCHORS = "batch", "height", "width", "anchors"
# Output of the original vs the copy, same input: float32 reordering noise stays far below this.
MAX_ABS_DIFFERENCE = 1e-3


class ExportError(RuntimeError):
    """A graph could not be made dynamic or exported; the message says which and why."""


def dynamic_copy(
    name_or_path: str | Path,
    *,
    spatial: bool = True,
    out_dir: Path | None = None,
    manifest: Manifest | None = None,
) -> Path:
    """A copy of a verified graph with a dynamic batch (and, with `spatial`, height and width),
    written once into the cache (or `out_dir`) and verified by running it at batch 2.

    The original is resolved and checksum-verified like any model first, so the copy is only
    ever derived from trusted bytes."""
    onnx = _require_onnx()
    source = resolve_weights(name_or_path, manifest=manifest or load_manifest(), download=False)
    suffix = "_dynamic" if spatial else "_dynamic_batch"
    target = (out_dir or cache_dir()) / f"{source.stem}{suffix}.onnx"
    if target.is_file():
        return target
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


@dataclass(frozen=True)
class UltralyticsExport:
    """What `export_ultralytics` wrote: the graph (a file, or OpenVINO's folder) and its
    description; for ONNX a manifest entry to paste into models/manifest.yaml once the file is
    published at a pinned URL."""

    path: Path
    entry: dict[str, Any]

    def snippet(self) -> str:
        """The entry as manifest YAML, under its model name."""
        return yaml.safe_dump({self.path.stem: self.entry}, sort_keys=False, width=100)


def export_ultralytics(
    weights: Path,
    *,
    fmt: Literal["onnx", "openvino"] = "onnx",
    imgsz: int = 640,
    dynamic: bool = False,
    out_dir: Path | None = None,
    manifest: Manifest | None = None,
) -> UltralyticsExport:
    """Export an Ultralytics checkpoint with Ultralytics' own exporter (needs the ultralytics
    extra), then describe the result for the manifest: sha256, size, input, head, class names.

    ONNX output runs on the onnxruntime and OpenVINO backends (OpenVINO reads ONNX itself);
    the OpenVINO folder is for sites that run Ultralytics' predictor on OpenVINO."""
    from gridwatch.detectors.backends.ultralytics_backend import load_ultralytics, model_names

    weights = Path(weights)
    if not weights.is_file():
        raise ExportError(f"checkpoint {weights} does not exist")
    ultralytics = load_ultralytics()
    try:
        model = ultralytics.YOLO(str(weights), task="detect")
        names = model_names(model)
        # No ONNX simplifier: Ultralytics would try to pip-install onnxslim, and sites are offline.
        options = {"simplify": False} if fmt == "onnx" else {}
        written = Path(
            model.export(format=fmt, imgsz=imgsz, dynamic=dynamic, device="cpu", **options)
        )
    except Exception as exc:  # Ultralytics raises assorted errors for unexportable models
        raise ExportError(f"Ultralytics could not export {weights} to {fmt}: {exc}") from exc
    if out_dir is not None and written.parent.resolve() != Path(out_dir).resolve():
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        target = Path(out_dir) / written.name
        if target.exists():
            raise ExportError(f"{target} already exists; remove it or choose another --out")
        written = Path(shutil.move(written, target))
    manifest = manifest or load_manifest()
    entry = _entry_for(written, fmt, imgsz, names, manifest)
    log.info("exported %s to %s", weights, written)
    return UltralyticsExport(written, entry)


def _entry_for(
    path: Path, fmt: str, imgsz: int, names: list[str], manifest: Manifest
) -> dict[str, Any]:
    """For ONNX, a manifest entry (a dynamic export runs at `input_size`); for OpenVINO, the
    same description of a folder, which the manifest cannot hold: it lists ONNX graphs, and
    the OpenVINO backend compiles those directly."""
    if fmt == "onnx":
        files = {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}
    else:
        xml = next(path.glob("*.xml"))
        bin_file = xml.with_suffix(".bin")
        files = {
            "folder": path.name,
            "files": {
                p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                for p in (xml, bin_file)
            },
        }
    shared = next((key for key, value in manifest.class_lists.items() if list(value) == names),
                  None)
    return {
        **files,
        "url": "REPLACE with the pinned URL this file is published at",
        "licence": "AGPL-3.0 (Ultralytics weights; check this model's own licence)",
        "input_size": [imgsz, imgsz],
        "output_format": "yolov8",
        "input_colour": "rgb",
        "input_range": "0-1",
        "letterbox": "centre",
        **({"classes": shared} if shared else {"names": names}),
    }
