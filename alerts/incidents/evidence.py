"""Evidence files of incidents: an annotated snapshot per incident (clips:
`gridwatch.worker.clips`).

The snapshot shows what the operator must judge at a glance: the zone, the objects with
class, score and track, and where and when. It is drawn on a copy, because the frame is
shared with the rest of the pipeline, and written atomically so a reader (the console, a
sink attaching it) never sees half a JPEG while a better frame replaces it.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from gridwatch.detectors.events import Event

JPEG_QUALITY = 80
BOX_COLOUR = (0, 220, 0)
ZONE_COLOUR = (0, 200, 255)
TEXT_COLOUR = (255, 255, 255)
LABEL_BACKGROUND = (0, 0, 0)


class EvidenceWriter:
    """Writes evidence below `evidence_dir`; the database keeps only relative paths."""

    def __init__(self, evidence_dir: str | Path, quality: int = JPEG_QUALITY) -> None:
        if not 1 <= quality <= 100:
            raise ValueError(f"quality: {quality} is outside 1-100")
        self.dir = Path(evidence_dir)
        self.quality = quality

    @staticmethod
    def snapshot_path(incident_id: str, started: datetime) -> str:
        """`YYYY/MM/DD/<id>.jpg` by the incident's UTC start day, so folders stay small."""
        return f"{started.astimezone(UTC):%Y/%m/%d}/{incident_id}.jpg"

    @staticmethod
    def clip_path(name: str, started: datetime) -> str:
        """`YYYY/MM/DD/<name>.mp4`: an incident's clip lies next to its snapshot."""
        return f"{started.astimezone(UTC):%Y/%m/%d}/{name}.mp4"

    def path_of(self, relative: str) -> Path:
        """The file of a stored relative path; refuses paths that leave the evidence dir."""
        root = self.dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"evidence path {relative!r} leaves the evidence directory")
        return path

    def write_snapshot(self, incident_id: str, started: datetime, event: Event) -> str:
        """Annotate the event's frame and store it; returns the path relative to `dir`."""
        if event.frame is None:
            raise ValueError(f"event {event.kind}/{event.phase} of {event.camera} has no frame")
        image = annotate(event.frame.bgr(), event)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"could not encode the snapshot of incident {incident_id} as JPEG")
        relative = self.snapshot_path(incident_id, started)
        _write_atomically(self.path_of(relative), encoded.tobytes())
        return relative


def annotate(image: np.ndarray, event: Event) -> np.ndarray:
    """A copy of `image` with the zone outline, the detections and a caption drawn on it."""
    out = image.copy()
    height, width = out.shape[:2]
    scale = max(0.45, height / 1080 * 0.9)
    thickness = max(1, round(height / 400))

    polygon = _zone_polygon(event.details.get("polygon"), width, height)
    if polygon is not None:
        cv2.polylines(out, [polygon], True, ZONE_COLOUR, thickness, cv2.LINE_AA)

    for det in event.detections:
        x1, x2 = (min(max(round(v), 0), width - 1) for v in det.box[0::2])
        y1, y2 = (min(max(round(v), 0), height - 1) for v in det.box[1::2])
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
        label = f"{det.cls} {det.score:.2f}" + (f" #{det.track}" if det.track is not None else "")
        _label(out, label, (x1, y1), scale * 0.8, thickness, BOX_COLOUR)

    zone = event.details.get("zone_name") or event.zone
    when = datetime.fromtimestamp(event.wall, UTC)
    caption = f"{event.camera} | {zone} | {event.kind} | {when:%Y-%m-%d %H:%M:%S} UTC"
    _label(out, caption, (0, 0), scale, thickness, LABEL_BACKGROUND, below=True)
    return out


def _zone_polygon(value: object, width: int, height: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        points = np.empty(0)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
        raise ValueError("event.details['polygon'] must be at least 3 [x, y] points")
    if points.min() < 0 or points.max() > 1:
        raise ValueError("event.details['polygon'] must be in 0-1 image coordinates")
    return np.round(points * [width - 1, height - 1]).astype(np.int32).reshape(-1, 1, 2)


def _label(
    image: np.ndarray, text: str, anchor: tuple[int, int], scale: float, thickness: int,
    background: tuple[int, int, int], below: bool = False,
) -> None:
    """Text on a filled box above the anchor (or below it, for the caption at the top edge)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad = max(2, thickness * 2)
    x = min(max(anchor[0], 0), max(image.shape[1] - tw - 2 * pad, 0))
    top = anchor[1] if below else anchor[1] - th - baseline - 2 * pad
    top = min(max(top, 0), max(image.shape[0] - th - baseline - 2 * pad, 0))
    bottom = top + th + baseline + 2 * pad
    cv2.rectangle(image, (x, top), (x + tw + 2 * pad, bottom), background, cv2.FILLED)
    cv2.putText(
        image, text, (x + pad, bottom - baseline - pad), font, scale, TEXT_COLOUR, thickness,
        cv2.LINE_AA,
    )


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
