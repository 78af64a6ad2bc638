"""The OpenVINO backend runs the shipped ONNX graphs and finds what onnxruntime finds on real
frames (same classes, boxes at IoU > 0.9), single-threaded with the latency hint."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.detection import Detection

pytest.importorskip(
    "openvino", reason="OpenVINO is an optional extra: pip install 'gridwatch[openvino]'"
)

MODELS = ["yolox_nano_coco_416", "yolov8n_coco_640_int8"]


@pytest.fixture(scope="module")
def frames(footage_dir: Path) -> dict[str, np.ndarray]:
    """MOT17-09 frame 1 (1080p pedestrians) and the boat clip 2 s in (boat and crew)."""
    mot = cv2.imread(str(footage_dir / "mot17_09_mini" / "img1" / "000001.jpg"))
    with av.open(str(footage_dir / "fishing_boat_sea_640x360_30fps.mp4")) as container:
        boat = next(f for f in container.decode(video=0) if f.time >= 2.0)
        boat_bgr = boat.to_ndarray(format="bgr24")
    return {"mot17_frame1": mot, "boat": boat_bgr}


@pytest.fixture(scope="module", params=MODELS)
def pair(request: pytest.FixtureRequest, models_dir: Path):
    name = request.param
    return (
        create_detector(name, model_dir=models_dir, backend="onnxruntime"),
        create_detector(name, model_dir=models_dir, backend="openvino"),
    )


def _iou(a: tuple, b: tuple) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _unmatched(reference: list[Detection], candidate: list[Detection]) -> list[Detection]:
    """Reference detections with no candidate of the same class at IoU > 0.9 (one-to-one)."""
    free = list(candidate)
    missing = []
    for det in sorted(reference, key=lambda d: -d.score):
        match = next(
            (c for c in free if c.cls_id == det.cls_id and _iou(c.box, det.box) > 0.9), None
        )
        if match is None:
            missing.append(det)
        else:
            free.remove(match)
    return missing


@pytest.mark.parametrize("frame", ["mot17_frame1", "boat"])
def test_openvino_finds_what_onnxruntime_finds_on_real_frames(
    pair, frames: dict[str, np.ndarray], frame: str
) -> None:
    onnxruntime, openvino = pair
    image = frames[frame]
    expected, got = onnxruntime.detect(image), openvino.detect(image)
    assert expected, f"onnxruntime found nothing on {frame}: the comparison would be empty"
    assert len(got) == len(expected)
    assert _unmatched(expected, got) == []
    assert _unmatched(got, expected) == []
    for a, b in zip(
        sorted(expected, key=lambda d: d.box), sorted(got, key=lambda d: d.box), strict=True
    ):
        assert abs(a.score - b.score) < 0.02
    if frame == "boat":
        assert "boat" in {d.cls for d in got}


def test_openvino_keeps_the_class_filter_and_batch_contract(pair, frames: dict) -> None:
    _, openvino = pair
    boats = openvino.detect(frames["boat"], classes={8})
    assert boats and {d.cls for d in boats} == {"boat"}
    images = [frames["boat"], frames["mot17_frame1"]]
    assert openvino.detect_batch(images) == [openvino.detect(image) for image in images]


def test_openvino_compiles_single_threaded_for_latency(pair) -> None:
    import openvino.properties as props

    _, openvino = pair
    compiled = openvino.compiled
    assert compiled.get_property(props.inference_num_threads) == 1
    assert compiled.get_property(props.streams.num) == 1
    mode = compiled.get_property(props.hint.performance_mode)
    assert str(mode).rsplit(".", 1)[-1] == "LATENCY"  # a string or an enum by version
    assert not hasattr(openvino, "session"), "the onnxruntime session must be released"


def test_openvino_takes_more_threads_when_asked(models_dir: Path) -> None:
    import openvino.properties as props

    detector = create_detector("yolox_nano_coco_416", model_dir=models_dir, backend="openvino",
                               threads=2)
    assert detector.compiled.get_property(props.inference_num_threads) == 2
