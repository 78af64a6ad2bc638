"""Readers for labelled image sets: YOLO-format boxes and head-point counts.

Each reader returns the images with their labels in pixels, so scoring never needs to know a
file format. A malformed label names its file and line instead of being skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetError(ValueError):
    """A labelled set that cannot be read as its format says (names the file)."""


@dataclass(frozen=True, slots=True)
class BoxedImage:
    """An image with its labelled boxes (x1, y1, x2, y2 pixels) and their category names."""

    name: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CountedImage:
    """An image with the head points of the people in it."""

    name: str
    path: Path
    points: np.ndarray

    @property
    def count(self) -> int:
        return len(self.points)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the picture."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def read_yolo_set(folder: Path, class_map: Mapping[int, str | None]) -> list[BoxedImage]:
    """`images/` and `labels/` of a YOLO-format set; ids mapped to category names through
    `class_map` (ids mapped to None are dropped on purpose, e.g. helmets; an id missing from
    the map is an error)."""
    images_dir, labels_dir = folder / "images", folder / "labels"
    if not images_dir.is_dir():
        raise DatasetError(f"{folder}: no images/ folder")
    out = []
    for path in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        width, height = image_size(path)
        boxes, cats = _yolo_labels(labels_dir / f"{path.stem}.txt", class_map, width, height)
        out.append(BoxedImage(path.name, path, width, height, boxes, cats))
    return out


def _yolo_labels(path: Path, class_map: Mapping[int, str | None], width: int, height: int
                 ) -> tuple[np.ndarray, tuple[str, ...]]:
    rows: list[list[float]] = []
    cats: list[str] = []
    lines = path.read_text().splitlines() if path.exists() else []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            cls_id = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:5])
        except (ValueError, IndexError) as err:
            raise DatasetError(f"{path}:{number}: expected 'class cx cy w h', got {line!r}"
                               ) from err
        if cls_id not in class_map:
            raise DatasetError(f"{path}:{number}: class id {cls_id} is not in the set's map")
        category = class_map[cls_id]
        if category is None:
            continue
        rows.append([(cx - w / 2) * width, (cy - h / 2) * height,
                     (cx + w / 2) * width, (cy + h / 2) * height])
        cats.append(category)
    return np.array(rows, dtype=np.float64).reshape(-1, 4), tuple(cats)


def read_head_points(folder: Path) -> list[CountedImage]:
    """`heads.json` (image name -> list of [x, y] head points) beside `images/`."""
    index = folder / "heads.json"
    try:
        heads = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{index}: {err}") from err
    out = []
    for name in sorted(heads):
        path = folder / "images" / name
        if not path.exists():
            raise DatasetError(f"{index}: image {name!r} is not in {folder / 'images'}")
        points = np.array(heads[name], dtype=np.float64).reshape(-1, 2)
        out.append(CountedImage(name, path, points))
    return out
