"""The readers parse the real shared sets into pixel boxes and head points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridwatch.evaluation.clips import read_clip_labels
from gridwatch.evaluation.datasets import DatasetError, read_head_points, read_yolo_set
from gridwatch.evaluation.sets import CONSTRUCTION_MACHINERY, SHORE_BOATS


def test_shore_boats_boxes_are_in_pixels_of_each_image(datasets_dir: Path) -> None:
    images = read_yolo_set(datasets_dir / "shore_boats", SHORE_BOATS.class_map)
    assert len(images) == 197
    first = next(i for i in images if i.name == "2ux5cw8z_1080_2022-07-17_02-54_output_0.jpg")
    assert (first.width, first.height) == (1920, 1080)
    # First label line: "2 0.543490 0.531019 0.020313 0.034259" -> a watercraft ~39 px wide.
    assert first.categories[0] == "watercraft"
    np.testing.assert_allclose(first.boxes[0], [1023.99, 554.98, 1063.0, 591.98], atol=0.1)
    assert set(first.categories) <= {"person", "land_vehicle", "watercraft"}


def test_construction_labels_drop_safety_gear_and_keep_machines(datasets_dir: Path) -> None:
    images = read_yolo_set(datasets_dir / "construction_machinery",
                           CONSTRUCTION_MACHINERY.class_map)
    assert len(images) == 513
    cats = {c for i in images for c in i.categories}
    assert cats == {"person", "machine", "vehicle"}
    assert sum(c == "machine" for i in images for c in i.categories) > 100


def test_head_points_count_the_people_of_each_image(datasets_dir: Path) -> None:
    images = read_head_points(datasets_dir / "crowd_heads")
    assert len(images) == 30
    assert sum(i.count for i in images) == 487
    assert next(i for i in images if i.name == "IMG_1.jpg").count == 10


def test_unknown_class_id_names_the_label_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    from PIL import Image

    Image.new("RGB", (40, 20)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels" / "a.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"a\.txt:1: class id 7"):
        read_yolo_set(tmp_path, {0: "person"})


def test_every_committed_clip_label_file_reads() -> None:
    labels_dir = Path(__file__).resolve().parents[2] / "benchmarks" / "labels"
    files = sorted(labels_dir.glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        labels = read_clip_labels(path)
        assert labels["source"] and labels["class"]
        assert labels.get("events") or labels.get("present")


def test_clip_label_with_a_typo_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "clip.yaml"
    path.write_text("source: a.mp4\nclass: boat\npresnt: [[0, 1]]\n")
    with pytest.raises(DatasetError, match="unknown key 'presnt'"):
        read_clip_labels(path)
