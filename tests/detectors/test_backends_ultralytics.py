"""The Ultralytics backend and exporter, run with the real `ultralytics` package.

Ultralytics is an optional AGPL-3.0 extra that pulls PyTorch (several GB), so the standard test
set-up does not install it and this module skips there. To run it, use a separate virtual
environment (never the project's: Ultralytics requires opencv-python, which would replace
opencv-python-headless), e.g. `pip install torch==2.14.1 torchvision==0.29.1 ultralytics`, then
`PYTHONPATH=. python -m pytest tests/detectors/test_backends_ultralytics.py`.

No Ultralytics checkpoint with trained weights exists offline here. Detection is therefore
checked on the shipped Ultralytics ONNX export (which `ultralytics.YOLO` loads like a `.pt`),
and the exporter on a checkpoint of Ultralytics' bundled yolov8n architecture with its initial
weights: the exported graph must compute what the PyTorch model computes.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort
import pytest

from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.backends.ultralytics_export import export_ultralytics
from gridwatch.detectors.detection import Detection
from gridwatch.models.fetch import file_sha256
from gridwatch.models.manifest import Manifest, load_manifest

ultralytics = pytest.importorskip(
    "ultralytics",
    reason="Ultralytics is an optional extra (pip install 'gridwatch[ultralytics]'), "
    "not in the standard test set-up: it pulls PyTorch",
)
torch = pytest.importorskip("torch")

MODEL = "yolov8n_coco_640_int8"


@pytest.fixture(scope="module")
def frames(footage_dir: Path) -> dict[str, np.ndarray]:
    mot = cv2.imread(str(footage_dir / "mot17_09_mini" / "img1" / "000001.jpg"))
    with av.open(str(footage_dir / "fishing_boat_sea_640x360_30fps.mp4")) as container:
        boat = next(f for f in container.decode(video=0) if f.time >= 2.0)
        return {"mot17_frame1": mot, "boat": boat.to_ndarray(format="bgr24")}


@pytest.fixture(scope="module")
def pair(models_dir: Path):
    return (
        create_detector(MODEL, model_dir=models_dir, backend="onnxruntime"),
        create_detector(MODEL, model_dir=models_dir, backend="ultralytics"),
    )


def _iou(a: tuple, b: tuple) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _matched(reference: list[Detection], candidate: list[Detection]) -> int:
    free = list(candidate)
    found = 0
    for det in sorted(reference, key=lambda d: -d.score):
        match = next(
            (c for c in free if c.cls_id == det.cls_id and _iou(c.box, det.box) > 0.9), None
        )
        if match is not None:
            free.remove(match)
            found += 1
    return found


@pytest.mark.parametrize("frame", ["mot17_frame1", "boat"])
def test_ultralytics_predictor_finds_what_our_onnxruntime_backend_finds(
    pair, frames: dict[str, np.ndarray], frame: str
) -> None:
    onnxruntime, ultra = pair
    expected, got = onnxruntime.detect(frames[frame]), ultra.detect(frames[frame])
    assert expected
    assert all(isinstance(d, Detection) and d.cls == ultra.names[d.cls_id] for d in got)
    # Ultralytics rounds its letterbox and pads differently by a pixel: near-threshold boxes
    # may come and go, the confident ones must be the same objects.
    confident = [d for d in expected if d.score >= 0.35]
    assert _matched(confident, got) == len(confident)
    if frame == "boat":
        assert "boat" in {d.cls for d in got}


def test_ultralytics_backend_keeps_the_class_filter_and_batch_contract(
    pair, frames: dict[str, np.ndarray]
) -> None:
    _, ultra = pair
    boats = ultra.detect(frames["boat"], classes={8})
    assert boats and {d.cls for d in boats} == {"boat"}
    images = [frames["boat"], frames["mot17_frame1"]]
    batch = ultra.detect_batch(images)
    singles = [ultra.detect(image) for image in images]
    assert [len(b) for b in batch] == [len(s) for s in singles]
    with pytest.raises(ValueError, match="classes"):
        ultra.detect(frames["boat"], classes={80})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ultralytics' bundled yolov8n architecture with its initial weights, saved as a .pt."""
    path = tmp_path_factory.mktemp("ckpt") / "yolov8n_init.pt"
    ultralytics.YOLO("yolov8n.yaml", task="detect").save(str(path))
    return path


def test_export_to_dynamic_onnx_computes_what_the_checkpoint_computes(
    checkpoint: Path, tmp_path: Path
) -> None:
    result = export_ultralytics(checkpoint, imgsz=320, dynamic=True, out_dir=tmp_path)
    assert result.path == tmp_path / "yolov8n_init.onnx"
    entry = result.entry
    assert entry["sha256"] == file_sha256(result.path)
    assert entry["bytes"] == result.path.stat().st_size
    assert (entry["input_size"], entry["output_format"]) == ([320, 320], "yolov8")
    pasted = {**entry, "url": "https://models.example.org/yolov8n_init.onnx"}
    manifest = Manifest.model_validate(
        {"class_lists": load_manifest().class_lists, "models": {"yolov8n_init": pasted}}
    )
    spec = manifest.get("yolov8n_init")
    model = ultralytics.YOLO(str(checkpoint), task="detect")
    assert list(spec.names) == [model.names[i] for i in range(len(model.names))]

    images = np.random.default_rng(1).uniform(0, 1, (2, 3, 320, 320)).astype(np.float32)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    exported = session.run(None, {session.get_inputs()[0].name: images})[0]
    torch_model = model.model.float().eval()
    with torch.no_grad():
        reference = torch_model(torch.from_numpy(images))[0].numpy()
    assert exported.shape == reference.shape == (2, 84, 2100)
    np.testing.assert_allclose(exported, reference, atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_export_to_openvino_writes_the_folder_and_its_checksums(
    checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    result = export_ultralytics(checkpoint, fmt="openvino", imgsz=320, out_dir=tmp_path)
    assert result.path.is_dir() and result.path.parent == tmp_path
    files = result.entry["files"]
    assert sorted(Path(name).suffix for name in files) == [".bin", ".xml"]
    for name, pin in files.items():
        assert pin["sha256"] == file_sha256(result.path / name)
