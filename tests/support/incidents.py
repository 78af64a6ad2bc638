"""Real evidence for incident tests: MOT17 frames with their ground-truth pedestrians.

The boxes are MOTChallenge ground truth (class 1, confidence 1) with the track id, and the
visibility as the score, so snapshots are drawn from real people on a real picture.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from gridwatch.detectors.detection import Detection
from gridwatch.detectors.events import Event
from gridwatch.ingest.frame import Frame

# 2025-06-15 12:00:00 UTC: media time t maps to wall time BASE_WALL + t in these tests.
BASE_WALL = 1_749_988_800.0
WALKWAY = [[0.05, 0.35], [0.95, 0.35], [0.95, 0.98], [0.05, 0.98]]


def mot_frame(footage_dir: Path, number: int, camera: str = "cam-mall") -> Frame:
    seq = footage_dir / "mot17_09_mini"
    image = cv2.imread(str(seq / "img1" / f"{number:06d}.jpg"))
    if image is None:
        raise FileNotFoundError(f"MOT17 frame {number} not found in {seq}")
    return Frame.from_bgr(camera, number, number / 30.0, BASE_WALL + number / 30.0, image)


def mot_people(footage_dir: Path, number: int) -> list[Detection]:
    people = []
    for line in (footage_dir / "mot17_09_mini" / "gt" / "gt.txt").read_text().splitlines():
        frame, track, left, top, w, h, conf, cls, visibility = line.split(",")
        if int(frame) == number and conf == "1" and cls == "1":
            x, y = float(left), float(top)
            box = (x, y, x + float(w), y + float(h))
            people.append(Detection("person", 0, float(visibility), box, int(track)))
    return people


def event(
    phase: str,
    t: float,
    *,
    camera: str = "cam-mall",
    zone: str = "walkway",
    kind: str = "crowd",
    severity: str = "medium",
    objects: dict[str, int] | None = None,
    frame: Frame | None = None,
    detections: list[Detection] | None = None,
    score: float = 0.0,
    wall: float | None = None,
) -> Event:
    return Event(
        kind=kind, rule=kind, camera=camera, zone=zone, phase=phase, t=t,  # type: ignore[arg-type]
        wall=BASE_WALL + t if wall is None else wall, severity=severity,
        objects=objects or {}, detections=detections or [], frame=frame, score=score,
        details={"polygon": WALKWAY, "zone_name": "Mall walkway"},
    )
