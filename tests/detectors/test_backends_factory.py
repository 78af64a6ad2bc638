"""Which backend runs a model: the caller's choice, else the manifest entry's, else onnxruntime;
unknown or missing backends are reported with what to do; the core never imports Ultralytics."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gridwatch.detectors.backends.base import UnknownBackendError
from gridwatch.detectors.backends.factory import BACKENDS, create_detector
from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.detectors.backends.optional import BackendUnavailableError
from gridwatch.models.errors import ManifestError
from gridwatch.models.manifest import MANIFEST_PATH, load_manifest

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def _manifest_with(tmp_path: Path, model: str, **fields: object) -> Path:
    data = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    data["models"][model].update(fields)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_packaged_manifest_chooses_onnxruntime_for_every_model(models_dir: Path) -> None:
    manifest = load_manifest()
    assert {entry.backend for entry in manifest.models.values()} == {"onnxruntime"}
    assert type(create_detector("yolox_nano_coco_416", model_dir=models_dir)) is OnnxDetector


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is an optional extra, not installed")
def test_manifest_backend_is_used_when_the_caller_names_none(
    tmp_path: Path, models_dir: Path
) -> None:
    from gridwatch.detectors.backends.openvino_backend import OpenVinoDetector

    manifest = load_manifest(_manifest_with(tmp_path, "yolox_nano_coco_416", backend="openvino"))
    chosen = create_detector("yolox_nano_coco_416", model_dir=models_dir, manifest=manifest)
    assert type(chosen) is OpenVinoDetector
    named = create_detector(
        "yolox_nano_coco_416", model_dir=models_dir, backend="onnxruntime", manifest=manifest
    )
    assert type(named) is OnnxDetector


def test_file_outside_the_manifest_runs_on_onnxruntime(tmp_path: Path, models_dir: Path) -> None:
    custom = Path(shutil.copy(models_dir / "yolox_nano_coco_416.onnx", tmp_path / "site.onnx"))
    assert type(create_detector(custom)) is OnnxDetector


def test_unknown_backend_lists_the_available_ones() -> None:
    with pytest.raises(UnknownBackendError) as err:
        create_detector("yolox_nano_coco_416", backend="tensorrt")
    message = str(err.value)
    assert "tensorrt" in message
    for name in ("onnxruntime", "openvino", "ultralytics"):
        assert name in message
    assert sorted(BACKENDS) == ["onnxruntime", "openvino", "ultralytics"]


def test_manifest_with_an_unknown_backend_is_rejected_naming_the_field(tmp_path: Path) -> None:
    path = _manifest_with(tmp_path, "yolov8n_coco_640_int8", backend="tensorrt")
    with pytest.raises(ManifestError, match=r"yolov8n_coco_640_int8\.backend"):
        load_manifest(path)


@pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is not None, reason="ultralytics is installed here"
)
def test_missing_ultralytics_says_which_extra_to_install(models_dir: Path) -> None:
    with pytest.raises(BackendUnavailableError) as err:
        create_detector("yolov8n_coco_640_int8", model_dir=models_dir, backend="ultralytics")
    assert "pip install 'gridwatch[ultralytics]'" in str(err.value)


def test_core_service_and_analyze_do_not_import_ultralytics_or_torch() -> None:
    """Ultralytics is AGPL-3.0: it may only be loaded when its backend is chosen."""
    code = (
        "import sys, gridwatch.detectors, gridwatch.detectors.pipeline, "
        "gridwatch.detectors.backends.factory, "
        "gridwatch.service, gridwatch.cli.analyze, gridwatch.cli.main, gridwatch.models.dynamic, "
        "gridwatch.detectors.backends.ultralytics_export\n"
        "loaded = sorted(m for m in ('ultralytics', 'torch') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
