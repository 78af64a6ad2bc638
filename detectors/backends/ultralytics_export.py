"""Ultralytics `.pt` checkpoints exported to ONNX or OpenVINO with Ultralytics' own exporter,
described as a manifest entry to paste.

It lives with the Ultralytics backend (it loads checkpoints the same way) rather than in
`gridwatch.models`, which sits below the detectors and knows only files and manifests. Like the
backend, it imports Ultralytics only when called.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from gridwatch.detectors.backends.ultralytics_backend import load_ultralytics, model_names
from gridwatch.models.errors import ExportError
from gridwatch.models.fetch import file_sha256
from gridwatch.models.manifest import Manifest, load_manifest

log = logging.getLogger(__name__)


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
