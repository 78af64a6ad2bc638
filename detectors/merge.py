"""Merging detections from overlapping regions into one list, each object once and whole.

Tiles and crops create two kinds of error that plain NMS does not fix: duplicates (the same
person seen by two overlapping tiles, boxes slightly different) and fragments (the half of a
person that one tile sees next to its edge, while the neighbour tile or the zone overview sees
the whole person). Fragments are recognisable: they touch an edge of their region that lies
inside the frame. So a fragment is dropped when another region reports the same object whole;
duplicates are fused by score-weighted box averaging (weighted boxes fusion); and a box that
another region's box of the same class almost entirely contains is treated as a fragment too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridwatch.detectors.detection import Detection, box_area, box_intersection, box_iou
from gridwatch.detectors.regions import Region


@dataclass(slots=True)
class _Entry:
    det: Detection
    region: int
    cut: bool
    area: float


def touches_inner_edge(box: Sequence[float], region: Region, width: int, height: int,
                       margin: float = 0.01) -> bool:
    """True when the box reaches an edge of its region that is not a frame border: the object
    may continue beyond what this region saw."""
    rx1, ry1, rx2, ry2 = region.box
    mx = max(2.0, margin * region.width)
    my = max(2.0, margin * region.height)
    return (
        (rx1 > 0 and box[0] - rx1 <= mx)
        or (ry1 > 0 and box[1] - ry1 <= my)
        or (rx2 < width and rx2 - box[2] <= mx)
        or (ry2 < height and ry2 - box[3] <= my)
    )


def merge_region_detections(
    results: Sequence[tuple[Region, Sequence[Detection]]],
    width: int,
    height: int,
    *,
    iou: float = 0.5,
    containment: float = 0.8,
    fragment_containment: float = 0.6,
    edge_margin: float = 0.01,
) -> list[Detection]:
    """One list of detections in source pixels from per-region results (also in source
    pixels). Class-aware throughout: a person on a boat is not merged into the boat.

    Boxes that no region edge cuts anchor the clusters (highest score first); a cut box joins
    the cluster whose anchor covers `fragment_containment` of it and adds only its score, so
    a fragment never drags a whole box towards itself. Among whole boxes, IoU >= `iou` is the
    same object (boxes averaged by score), and so is a box that `containment` of lies inside
    a box from another region (the larger stands). The cluster keeps the best score: two
    views agreeing on an object is evidence, not noise.
    """
    entries = [
        _Entry(d, i, touches_inner_edge(d.box, region, width, height, edge_margin),
               box_area(d.box))
        for i, (region, dets) in enumerate(results)
        for d in dets
    ]
    if len(results) <= 1:
        return [e.det for e in entries]
    entries.sort(key=lambda e: (e.cut, -e.det.score))
    clusters: list[_Cluster] = []
    for e in entries:
        target = next((c for c in clusters if c.accepts(e, iou, containment,
                                                         fragment_containment)), None)
        if target is None:
            clusters.append(_Cluster(e))
        else:
            target.add(e, iou)
    return [c.detection() for c in clusters]


class _Cluster:
    """One object: its anchor box, the whole boxes fused into it and the best score seen."""

    def __init__(self, anchor: _Entry) -> None:
        self.anchor = anchor
        self.members = [anchor]
        self.score = anchor.det.score

    def accepts(self, e: _Entry, iou: float, containment: float, fragment: float) -> bool:
        a = self.anchor
        if a.det.cls_id != e.det.cls_id:
            return False
        inter = box_intersection(a.det.box, e.det.box)
        if inter <= 0:
            return False
        if e.cut and inter >= fragment * e.area:
            return True
        if box_iou(a.det.box, e.det.box) >= iou:
            return True
        return a.region != e.region and inter >= containment * min(a.area, e.area)

    def add(self, e: _Entry, iou: float) -> None:
        self.score = max(self.score, e.det.score)
        if e.cut or self.anchor.cut:
            return
        if box_iou(self.anchor.det.box, e.det.box) >= iou:
            self.members.append(e)
        elif e.area > self.anchor.area:
            self.anchor = e
            self.members = [e]

    def detection(self) -> Detection:
        """Score-weighted average of the fused boxes, with the best score of the cluster."""
        head = self.anchor.det
        total = sum(m.det.score for m in self.members)
        box = tuple(
            sum(m.det.box[k] * m.det.score for m in self.members) / total for k in range(4)
        )
        return Detection(head.cls, head.cls_id, self.score, box)  # type: ignore[arg-type]


def drop_border_slivers(detections: Sequence[Detection], width: int,
                        min_aspect: float = 0.3, margin: float = 2.0) -> list[Detection]:
    """Leave out boxes that touch the left or right frame border and are less than
    `min_aspect` as wide as they are tall: a sliver of something mostly outside the picture,
    whose class is a guess and whose foot point (used for zone membership) is wrong. The object
    is reported once enough of it is in view, a frame or two later."""
    out = []
    for d in detections:
        x1, y1, x2, y2 = d.box
        at_side = x1 <= margin or x2 >= width - margin
        if at_side and (x2 - x1) < min_aspect * (y2 - y1):
            continue
        out.append(d)
    return out
