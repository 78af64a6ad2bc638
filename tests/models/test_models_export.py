"""Dynamic copies of the shipped YOLOX-nano graph: batch 2 gives each image's batch-1
detections on real frames, 320x320 input still finds the boat, copies go to the cache, and the
manifest's derived `yolox_nano_coco_320` is made on first use and matches its pinned sha256."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml

from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.models.errors import ExportError, ManifestError
from gridwatch.models.fetch import file_sha256
from gridwatch.models.manifest import MANIFEST_PATH, get_model_spec, load_manifest
from gridwatch.models.weights import dynamic_copy

pytest.importorskip("onnx", reason="dynamic copies need: pip install 'gridwatch[onnx]'")

MODEL = "yolox_nano_coco_416"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def dynamic_graph(cache: Path) -> Path:
    return dynamic_copy(MODEL, out_dir=cache)


@pytest.fixture(scope="module")
def images(footage_dir: Path) -> list[np.ndarray]:
    """MOT17-09 frame 1 (1920x1080 pedestrians) and the boat clip 2 s in (640x360)."""
    mot = cv2.imread(str(footage_dir / "mot17_09_mini" / "img1" / "000001.jpg"))
    with av.open(str(footage_dir / "fishing_boat_sea_640x360_30fps.mp4")) as container:
        boat = next(f for f in container.decode(video=0) if f.time >= 2.0)
        return [mot, boat.to_ndarray(format="bgr24")]


def _close(a: list, b: list) -> bool:
    """Same detections up to float noise of a different batch layout."""
    return len(a) == len(b) and all(
        x.cls_id == y.cls_id and abs(x.score - y.score) < 1e-4
        and np.allclose(x.box, y.box, atol=0.05)
        for x, y in zip(a, b, strict=True)
    )


def test_batch_of_two_gives_each_image_its_batch_one_detections(
    dynamic_graph: Path, models_dir: Path, images: list[np.ndarray]
) -> None:
    spec = get_model_spec(MODEL)
    reference = OnnxDetector(spec, models_dir / spec.file)
    batched = OnnxDetector(spec, dynamic_graph)
    tensors, geometries = [], []
    for image in images:
        geometries.append(batched.prepare(image))
        tensors.append(batched.input_tensor.copy())
    feed = {batched.session.get_inputs()[0].name: np.concatenate(tensors)}
    outputs = batched.session.run(None, feed)[0]
    assert outputs.shape == (2, 3549, 85)
    for image, output, geometry in zip(images, outputs, geometries, strict=True):
        expected = reference.detect(image)
        assert expected
        assert _close(batched.decode(output, geometry), expected)


def test_smaller_input_runs_on_the_dynamic_copy_and_still_finds_the_boat(
    dynamic_graph: Path, images: list[np.ndarray]
) -> None:
    spec = get_model_spec(MODEL).model_copy(update={"input_size": (320, 320)})
    detector = OnnxDetector(spec, dynamic_graph)
    boats = [d for d in detector.detect(images[1]) if d.cls == "boat"]
    assert boats and max(d.score for d in boats) > 0.5
    people = [d for d in detector.detect(images[0]) if d.cls == "person"]
    assert people


def test_copy_is_made_once_and_never_beside_the_original(
    dynamic_graph: Path, cache: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    assert dynamic_graph.parent == cache
    mtime = dynamic_graph.stat().st_mtime_ns
    assert dynamic_copy(MODEL, out_dir=cache) == dynamic_graph
    assert dynamic_graph.stat().st_mtime_ns == mtime
    assert not list(models_dir.glob("*dynamic*"))
    monkeypatch.setenv("GRIDWATCH_CACHE_DIR", str(tmp_path))
    default = dynamic_copy(MODEL, spatial=False)
    assert default == tmp_path / "models" / f"{MODEL}_dynamic_batch.onnx"


def test_graph_with_shapes_fixed_inside_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"yolov8n_coco_640_int8\.onnx cannot be made dynamic"):
        dynamic_copy("yolov8n_coco_640_int8", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_derived_manifest_model_is_made_in_the_cache_verified_and_runs_at_320(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: list[np.ndarray]
) -> None:
    monkeypatch.setenv("GRIDWATCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRIDWATCH_OFFLINE", "1")
    monkeypatch.delenv("GRIDWATCH_MODEL_DIR", raising=False)
    entry = get_model_spec("yolox_nano_coco_320")
    detector = create_detector("yolox_nano_coco_320")
    made = tmp_path / "models" / entry.file
    assert file_sha256(made) == entry.sha256
    assert detector.input_size == (320, 320)
    assert "boat" in {d.cls for d in detector.detect(images[1])}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"derived_from": "yolo_imaginary"}, r"yolox_nano_coco_320\.derived_from"),
        ({"url": "https://example.org/x.onnx"}, "give one of url .* derived_from"),
    ],
)
def test_derived_entries_must_name_a_downloaded_model_and_have_no_url(
    tmp_path: Path, change: dict, message: str
) -> None:
    data = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    data["models"]["yolox_nano_coco_320"].update(change)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)
