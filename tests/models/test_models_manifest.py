"""The packaged model manifest describes the real shared weights, and bad manifests are rejected
with an error naming the field."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import onnxruntime as ort
import pytest
import yaml

from gridwatch.models.errors import ManifestError, UnknownModelError
from gridwatch.models.manifest import MANIFEST_PATH, get_model_spec, load_manifest
from gridwatch.models.weights import BUNDLED_DIR, resolve_weights

MODEL_NAMES = ["yolox_nano_coco_416", "yolov8n_coco_640_int8"]
DEIMV2_NAMES = ["deimv2_femto_coco_416", "deimv2_atto_coco_320"]


def test_manifest_lists_the_shipped_models_with_licence_and_format() -> None:
    manifest = load_manifest()
    # yolox_nano_coco_320 is made locally from yolox_nano_coco_416
    # (tests/models/test_models_export.py).
    assert sorted(manifest.models) == sorted(
        [*MODEL_NAMES, *DEIMV2_NAMES, "yolox_nano_coco_320", "yolox_nano_excavator_416"]
    )
    yolox, yolov8 = (get_model_spec(n) for n in MODEL_NAMES)
    assert (yolox.licence, yolox.output_format) == ("Apache-2.0", "yolox")
    assert (yolox.input_size, yolox.input_colour, yolox.input_range) == ((416, 416), "bgr", "0-255")
    assert (yolov8.licence, yolov8.output_format) == ("AGPL-3.0", "yolov8")
    assert (yolov8.input_size, yolov8.input_colour) == ((640, 640), "rgb")
    assert yolov8.input_range == "0-1"
    for spec in (yolox, yolov8):
        assert str(spec.url).startswith("https://raw.githubusercontent.com/")
        assert len(spec.names) == 80
        assert (spec.names[0], spec.names[2], spec.names[8]) == ("person", "car", "boat")


def test_deimv2_entries_pin_the_upstream_commit_and_take_stretched_rgb() -> None:
    for name, size in zip(DEIMV2_NAMES, (416, 320), strict=True):
        spec = get_model_spec(name)
        assert (spec.licence, spec.output_format, spec.letterbox) == (
            "Apache-2.0", "deimv2", "stretch"
        )
        assert spec.input_size == (size, size)
        assert (spec.input_colour, spec.input_range) == ("rgb", "0-1")
        assert str(spec.url).startswith(
            "https://raw.githubusercontent.com/Kazuhito00/DEIMv2-ONNX-Sample/f88d4382/"
        )
        assert len(spec.names) == 80


@pytest.mark.parametrize("name", [*MODEL_NAMES, *DEIMV2_NAMES])
def test_manifest_sha256_and_size_match_the_shared_weights(name: str, models_dir: Path) -> None:
    spec = get_model_spec(name)
    data = (models_dir / spec.file).read_bytes()
    assert len(data) == spec.bytes
    assert hashlib.sha256(data).hexdigest() == spec.sha256


def test_manifest_class_names_match_the_names_embedded_in_the_ultralytics_export(
    models_dir: Path,
) -> None:
    spec = get_model_spec("yolov8n_coco_640_int8")
    session = ort.InferenceSession(str(models_dir / spec.file), providers=["CPUExecutionProvider"])
    embedded = ast.literal_eval(session.get_modelmeta().custom_metadata_map["names"])
    assert tuple(embedded[i] for i in range(len(embedded))) == spec.names


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError) as err:
        get_model_spec("yolov99_imaginary")
    message = str(err.value)
    assert "yolov99_imaginary" in message
    for name in MODEL_NAMES:
        assert name in message


def _broken_manifest(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(MANIFEST_PATH.read_text())
    data["models"]["yolox_nano_coco_416"].update(changes)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"sha256": "not-a-hash"}, "sha256"),
        ({"output_format": "detr"}, "output_format"),
        ({"letterbox": "stretch"}, "letterbox"),
        ({"input_size": [416]}, "input_size"),
        ({"classes": "imagenet"}, "imagenet"),
        ({"file": "../../etc/passwd"}, "file"),
        ({"url": "not a url"}, "url"),
        ({"colour_space": "bgr"}, "colour_space"),
    ],
)
def test_invalid_manifest_entry_is_rejected_naming_the_field(
    tmp_path: Path, changes: dict, named: str
) -> None:
    with pytest.raises(ManifestError) as err:
        load_manifest(_broken_manifest(tmp_path, **changes))
    assert named in str(err.value)
    assert "manifest" in str(err.value)


def test_manifest_that_is_not_yaml_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(path)


def test_bundled_excavator_model_ships_in_the_package_and_matches_its_pin() -> None:
    spec = get_model_spec("yolox_nano_excavator_416")
    path = resolve_weights(spec.name, download=False)
    data = path.read_bytes()
    assert path.parent == BUNDLED_DIR
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (spec.sha256, spec.bytes)
    assert spec.bundled and spec.url is None and spec.licence.startswith("Apache-2.0")
    assert len(spec.names) == 81 and spec.names[80] == "excavator"
    assert spec.names[:80] == get_model_spec("yolox_nano_coco_416").names
