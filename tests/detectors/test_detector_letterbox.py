"""The letterbox places real frames exactly where its geometry says, and maps boxes back exactly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.detectors.backends.letterbox import Letterboxer, letterbox_geometry

SIZES = [(1920, 1080), (640, 360), (320, 240), (300, 900), (416, 416), (1000, 999)]


@pytest.fixture(scope="module")
def mot_frame(footage_dir: Path) -> np.ndarray:
    return cv2.imread(str(footage_dir / "mot17_09_mini" / "img1" / "000001.jpg"))


@pytest.mark.parametrize("placement", ["top_left", "centre"])
@pytest.mark.parametrize(("src_w", "src_h"), SIZES)
def test_boxes_round_trip_through_the_canvas_exactly(
    placement: str, src_w: int, src_h: int
) -> None:
    geo = letterbox_geometry(src_w, src_h, 640, 640, placement)
    rng = np.random.default_rng(src_w * src_h)
    corners = rng.uniform(0, 1, (50, 4)) * [src_w, src_h, src_w, src_h]
    boxes = np.concatenate(
        (np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])),
        axis=1,
    )
    np.testing.assert_allclose(geo.to_source(geo.to_canvas(boxes)), boxes, atol=1e-9)
    full = np.array([[0.0, 0.0, src_w, src_h]])
    canvas_full = geo.to_canvas(full)[0]
    assert canvas_full[0] == geo.pad_x and canvas_full[1] == geo.pad_y
    assert canvas_full[2] == geo.pad_x + geo.width and canvas_full[3] == geo.pad_y + geo.height
    assert geo.width <= 640 and geo.height <= 640
    assert 640 in (geo.width, geo.height)


@pytest.mark.parametrize("placement", ["top_left", "centre"])
def test_canvas_holds_the_resized_frame_at_the_pad_offset_and_114_elsewhere(
    mot_frame: np.ndarray, placement: str
) -> None:
    box = Letterboxer((416, 416), placement)
    canvas, geo = box(mot_frame)
    expected = np.full((416, 416, 3), 114, np.uint8)
    resized = cv2.resize(mot_frame, (geo.width, geo.height), interpolation=cv2.INTER_LINEAR)
    expected[geo.pad_y : geo.pad_y + geo.height, geo.pad_x : geo.pad_x + geo.width] = resized
    np.testing.assert_array_equal(canvas, expected)
    if placement == "top_left":
        assert (geo.pad_x, geo.pad_y) == (0, 0)
    else:
        assert geo.pad_x == 0 and geo.pad_y == (416 - geo.height) // 2 > 0


def test_pad_is_repainted_when_the_source_size_changes(mot_frame: np.ndarray) -> None:
    box = Letterboxer((416, 416), "centre")
    box(cv2.resize(mot_frame, (416, 416)))
    canvas, geo = box(mot_frame)
    assert (geo.pad_x, geo.pad_y) == (0, (416 - geo.height) // 2)
    assert (canvas[: geo.pad_y] == 114).all()
    assert (canvas[geo.pad_y + geo.height :] == 114).all()


@pytest.mark.parametrize("placement", ["top_left", "centre"])
def test_a_marked_source_pixel_maps_back_to_itself(mot_frame: np.ndarray, placement: str) -> None:
    frame = mot_frame.copy()
    x, y = 1234, 567
    frame[y - 10 : y + 10, x - 10 : x + 10] = (255, 0, 255)
    box = Letterboxer((640, 640), placement)
    plain = box(mot_frame)[0].copy()
    canvas, geo = box(frame)
    changed = np.abs(canvas.astype(int) - plain).max(axis=2) > 60
    ys, xs = np.nonzero(changed)
    blob = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
    back = geo.to_source(blob)[0]
    np.testing.assert_allclose(back, [x - 10, y - 10, x + 10, y + 10], atol=1 / geo.scale_x)


def test_boxes_in_the_pad_are_clipped_to_the_source() -> None:
    geo = letterbox_geometry(1920, 1080, 640, 640, "centre")
    spill = np.array([[-5.0, 10.0, 700.0, 639.0]])
    assert geo.to_source(spill).tolist() == [[0.0, 0.0, 1920.0, 1080.0]]
