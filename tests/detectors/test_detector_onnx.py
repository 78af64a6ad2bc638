"""Both shipped detectors, run by onnxruntime on real footage: people in MOT17-09 at their
ground-truth boxes, the boat while in view and none on the empty sea, boxes in source pixels."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.detectors.backends.base import (
    Detector,
    ModelMismatchError,
    UnknownBackendError,
    class_ids,
)
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.backends.onnx_backend import OnnxDetector
from gridwatch.detectors.detection import Detection
from gridwatch.models.errors import UnknownModelError
from gridwatch.models.manifest import get_model_spec
from tests.support.mot_truth import boat_clip_frames, iou, match, pedestrians_and_ignored

MODELS = ["yolox_nano_coco_416", "yolov8n_coco_640_int8"]
# Recall / precision floors for persons at IoU >= 0.5 over MOT17-09 frames 1-4 (24 pedestrians),
# set below what was measured at conf 0.25: yolox 0.62 / 0.62, yolov8n int8 0.83 / 0.74.
RECALL_FLOOR = {"yolox_nano_coco_416": 0.5, "yolov8n_coco_640_int8": 0.75}
PRECISION_FLOOR = {"yolox_nano_coco_416": 0.5, "yolov8n_coco_640_int8": 0.6}
PERSON, BOAT = 0, 8


@pytest.fixture(scope="module", params=MODELS)
def detector(request: pytest.FixtureRequest, models_dir: Path) -> OnnxDetector:
    built = create_detector(request.param, model_dir=models_dir)
    assert isinstance(built, OnnxDetector)
    return built


@pytest.fixture(scope="module")
def mot_dir(footage_dir: Path) -> Path:
    return footage_dir / "mot17_09_mini"


@pytest.fixture(scope="module")
def boat_frames(footage_dir: Path) -> dict[str, np.ndarray]:
    return boat_clip_frames(footage_dir)


def test_people_are_found_at_their_mot17_ground_truth_boxes(
    detector: OnnxDetector, mot_dir: Path
) -> None:
    name = detector.spec.name
    tp = fp = total = 0
    for frame in range(1, 5):
        image = cv2.imread(str(mot_dir / "img1" / f"{frame:06d}.jpg"))
        height, width = image.shape[:2]
        gt, ignored = pedestrians_and_ignored(mot_dir, frame, width, height)
        assert len(gt) == 6
        found, wrong = match(detector.detect(image, conf=0.25, classes={PERSON}), gt, ignored)
        tp, fp, total = tp + found, fp + wrong, total + len(gt)
    recall, precision = tp / total, tp / max(1, tp + fp)
    print(f"{name}: MOT17-09 frames 1-4 recall {recall:.2f} precision {precision:.2f}")
    assert recall >= RECALL_FLOOR[name]
    assert precision >= PRECISION_FLOOR[name]


def test_first_mot17_frame_has_people_matched_and_boxes_inside_the_image(
    detector: OnnxDetector, mot_dir: Path
) -> None:
    image = cv2.imread(str(mot_dir / "img1" / "000001.jpg"))
    height, width = image.shape[:2]
    gt, ignored = pedestrians_and_ignored(mot_dir, 1, width, height)
    dets = detector.detect(image)
    assert match([d for d in dets if d.cls_id == PERSON], gt, ignored)[0] >= 3
    for det in dets:
        x1, y1, x2, y2 = det.box
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert det.cls == detector.names[det.cls_id]
        assert det.score >= 0.25


def test_boxes_on_a_region_crop_are_in_crop_pixels(detector: OnnxDetector, mot_dir: Path) -> None:
    """The region stage hands the detector views into the frame; boxes must be relative to the
    view so that adding the crop origin lands them on the frame's ground truth."""
    image = cv2.imread(str(mot_dir / "img1" / "000001.jpg"))
    left, top = 1100, 200
    crop = image[top:1000, left:]
    gt, ignored = pedestrians_and_ignored(mot_dir, 1, image.shape[1], image.shape[0])
    inside = gt[(gt[:, 0] >= left) & (gt[:, 1] >= top) & (gt[:, 2] < image.shape[1])]
    assert len(inside) == 3
    dets = detector.detect(crop, classes={PERSON})
    for det in dets:
        x1, y1, x2, y2 = det.box
        assert 0 <= x1 < x2 <= crop.shape[1] and 0 <= y1 < y2 <= crop.shape[0]
    offset = np.array([left, top, left, top])
    shifted = [
        Detection(d.cls, d.cls_id, d.score, tuple((np.array(d.box) + offset).tolist()))
        for d in dets
    ]
    assert match(shifted, inside, ignored)[0] == 3


def test_boat_is_found_while_in_view(detector: OnnxDetector, boat_frames: dict) -> None:
    boats = [d for d in detector.detect(boat_frames["boat"]) if d.cls == "boat"]
    assert boats
    x1, y1, x2, y2 = max(boats, key=lambda d: d.score).box
    assert (x2 - x1) * (y2 - y1) > 0.01 * 640 * 360


def test_empty_sea_has_no_boat(detector: OnnxDetector, boat_frames: dict) -> None:
    assert [d for d in detector.detect(boat_frames["empty"]) if d.cls == "boat"] == []


def test_boxes_scale_with_the_image_passed_in(detector: OnnxDetector, boat_frames: dict) -> None:
    image = boat_frames["boat"]
    big = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    small_boat = max(detector.detect(image, classes={BOAT}), key=lambda d: d.score)
    big_boat = max(detector.detect(big, classes={BOAT}), key=lambda d: d.score)
    halved = np.array(big_boat.box) / 2
    assert iou(halved[None], np.array([small_boat.box]))[0, 0] > 0.9
    assert big_boat.box[3] > image.shape[0]


def test_class_filter_keeps_only_those_classes(detector: OnnxDetector, boat_frames: dict) -> None:
    everything = detector.detect(boat_frames["crew"])
    assert {d.cls for d in everything} >= {"boat", "person"}
    only_boats = detector.detect(boat_frames["crew"], classes=class_ids(detector.names, {"boat"}))
    assert only_boats and {d.cls for d in only_boats} == {"boat"}
    with pytest.raises(ValueError, match="classes"):
        detector.detect(boat_frames["boat"], classes={80})
    with pytest.raises(ValueError, match="sailboat"):
        class_ids(detector.names, {"boat", "sailboat"})


def test_batch_gives_the_same_detections_as_single_calls(
    detector: OnnxDetector, boat_frames: dict
) -> None:
    images = [boat_frames["boat"], boat_frames["empty"]]
    assert detector.detect_batch(images) == [detector.detect(image) for image in images]


def test_grey_frames_are_accepted_and_bad_images_rejected(
    detector: OnnxDetector, mot_dir: Path
) -> None:
    grey = cv2.imread(str(mot_dir / "img1" / "000001.jpg"), cv2.IMREAD_GRAYSCALE)
    assert any(d.cls == "person" for d in detector.detect(grey))
    with pytest.raises(ValueError, match=r"\(360, 640, 4\)"):
        detector.detect(np.zeros((360, 640, 4), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        detector.detect(np.zeros((360, 640, 3), np.float32))


def test_detector_satisfies_the_protocol(detector: OnnxDetector) -> None:
    assert isinstance(detector, Detector)
    assert detector.input_size == get_model_spec(detector.spec.name).input_size
    assert len(detector.names) == 80


def test_weights_that_do_not_fit_the_spec_fail_at_load(models_dir: Path) -> None:
    spec = get_model_spec("yolox_nano_coco_416")
    with pytest.raises(ModelMismatchError) as err:
        OnnxDetector(spec, models_dir / "yolov8n_coco_640_int8.onnx")
    message = str(err.value)
    assert "640" in message and "416" in message and "yolox_nano_coco_416" in message


def test_unknown_model_or_backend_names_the_choices(models_dir: Path) -> None:
    with pytest.raises(UnknownModelError, match="yolox_nano_coco_416"):
        create_detector("yolo_world_xl", model_dir=models_dir)
    with pytest.raises(UnknownBackendError, match="onnxruntime"):
        create_detector("yolox_nano_coco_416", backend="tensorrt")


def test_non_onnx_file_is_reported_as_unloadable(tmp_path: Path) -> None:
    fake = tmp_path / "broken.onnx"
    fake.write_bytes(b"not a protobuf")
    with pytest.raises(ModelMismatchError, match=r"broken\.onnx"):
        create_detector(fake)


@pytest.mark.parametrize("name", MODELS)
def test_renamed_export_outside_the_manifest_runs_from_its_graph(
    name: str, models_dir: Path, tmp_path: Path, boat_frames: dict
) -> None:
    custom = Path(shutil.copy(models_dir / f"{name}.onnx", tmp_path / "site_export.onnx"))
    from_graph = create_detector(custom)
    from_manifest = create_detector(name, model_dir=models_dir)
    spec = get_model_spec(name)
    assert from_graph.spec.output_format == spec.output_format
    assert from_graph.input_size == spec.input_size
    assert from_graph.names == list(spec.names)
    image = boat_frames["boat"]
    assert from_graph.detect(image) == from_manifest.detect(image)
