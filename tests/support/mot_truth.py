"""Ground truth of the shared footage for detector tests: MOT17-09 pedestrians (and the rows a
person detection may legitimately hit), greedy IoU matching, and the sea clip's boat frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from gridwatch.detectors.detection import Detection


def pedestrians_and_ignored(mot_dir: Path, frame: int, width: int, height: int
                            ) -> tuple[np.ndarray, np.ndarray]:
    """MOT gt rows of one frame: pedestrians (conf 1, class 1) and everything else, which a
    person detection may legitimately hit (static people, reflections, distractors)."""
    gt = np.loadtxt(mot_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    rows = gt[gt[:, 0] == frame]
    boxes = np.stack((rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]), 1)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    pedestrian = (rows[:, 6] == 1) & (rows[:, 7] == 1)
    return boxes[pedestrian], boxes[~pedestrian]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def match(dets: list[Detection], gt: np.ndarray, ignored: np.ndarray) -> tuple[int, int]:
    """Greedy one-to-one matching at IoU >= 0.5 by score: (true positives, false positives)."""
    boxes = np.array([d.box for d in sorted(dets, key=lambda d: -d.score)]).reshape(-1, 4)
    tp = fp = 0
    free = np.ones(len(gt), bool)
    for box in boxes:
        overlap = iou(box[None], gt)[0] * free if len(gt) else np.zeros(0)
        if overlap.size and overlap.max() >= 0.5:
            free[overlap.argmax()] = False
            tp += 1
        elif not (len(ignored) and iou(box[None], ignored).max() >= 0.5):
            fp += 1
    return tp, fp


def boat_clip_frames(footage_dir: Path) -> dict[str, np.ndarray]:
    """2 s in: the boat fills the left half; 8 s in: boat leaving, crew clearly visible;
    the last frame: empty waves."""
    frames: dict[str, np.ndarray] = {}
    with av.open(str(footage_dir / "fishing_boat_sea_640x360_30fps.mp4")) as container:
        for frame in container.decode(video=0):
            for key, at in (("boat", 2.0), ("crew", 8.0)):
                if key not in frames and frame.time >= at:
                    frames[key] = frame.to_ndarray(format="bgr24")
            last = frame
        frames["empty"] = last.to_ndarray(format="bgr24")
    return frames
