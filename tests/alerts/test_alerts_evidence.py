"""Snapshots: annotated copies of real frames, written atomically at dated paths."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from tests.support.incidents import event, mot_frame, mot_people

STARTED = datetime(2025, 6, 15, 23, 59, 58, tzinfo=UTC)


@pytest.fixture
def writer(tmp_path) -> EvidenceWriter:
    return EvidenceWriter(tmp_path / "evidence")


def test_snapshot_is_a_jpeg_of_the_frame_size_at_a_dated_path(writer, footage_dir):
    frame = mot_frame(footage_dir, 1)
    ev = event("start", frame.t, frame=frame, detections=mot_people(footage_dir, 1), score=4.2)

    relative = writer.write_snapshot("0123abcd", STARTED, ev)

    assert relative == "2025/06/15/0123abcd.jpg"
    path = writer.dir / relative
    data = path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff"
    decoded = cv2.imread(str(path))
    assert decoded.shape == (frame.height, frame.width, 3)
    assert not list(path.parent.glob("*.tmp"))


def test_snapshot_draws_boxes_and_zone_on_a_copy_of_the_frame(writer, footage_dir):
    frame = mot_frame(footage_dir, 1)
    raw = frame.bgr().copy()
    people = mot_people(footage_dir, 1)
    ev = event("start", frame.t, frame=frame, detections=people, score=4.2)

    decoded = cv2.imread(str(writer.dir / writer.write_snapshot("abc", STARTED, ev)))

    assert np.array_equal(frame.bgr(), raw), "the shared frame was drawn on"
    diff = np.abs(decoded.astype(np.int16) - raw.astype(np.int16)).max(axis=2)
    # The left edge of a fully visible pedestrian's box (track 1 at x=260, y 450-712).
    person = next(d for d in people if d.track == 1)
    x1, y1, _, y2 = (round(v) for v in person.box)
    on_edge = diff[y1 + 40 : y2 - 40, x1 - 1 : x1 + 2]
    assert on_edge.mean() > 60
    # The zone's top edge (y = 0.35 of the height) drawn across the picture.
    zone_y = round(0.35 * (frame.height - 1))
    assert diff[zone_y - 1 : zone_y + 2, 600:1100].mean() > 60
    # The rest is the frame, only through JPEG at quality 80.
    untouched = diff[200:300, 700:1000]
    assert untouched.mean() < 8


def test_a_better_snapshot_replaces_the_file_in_place(writer, footage_dir):
    first = event("start", 0.0, frame=mot_frame(footage_dir, 1), score=1.0)
    second = event("update", 0.1, frame=mot_frame(footage_dir, 4),
                   detections=mot_people(footage_dir, 4), score=3.0)
    path = writer.dir / writer.write_snapshot("same", STARTED, first)
    before = path.read_bytes()

    assert writer.write_snapshot("same", STARTED, second) == "2025/06/15/same.jpg"

    assert path.read_bytes() != before
    assert [p.name for p in path.parent.iterdir()] == ["same.jpg"]


def test_malformed_zone_polygon_is_reported_by_field(writer, footage_dir):
    ev = event("start", 0.0, frame=mot_frame(footage_dir, 1))
    ev.details["polygon"] = [[0.1, 0.1], [1.4, 0.2], [0.5, 0.9]]

    with pytest.raises(ValueError, match=r"details\['polygon'\].*0-1"):
        writer.write_snapshot("bad", STARTED, ev)


def test_stored_paths_cannot_leave_the_evidence_dir(writer):
    assert writer.path_of("2025/06/15/x.jpg") == (writer.dir / "2025/06/15/x.jpg").resolve()
    with pytest.raises(ValueError, match="leaves the evidence directory"):
        writer.path_of("../../etc/passwd")
