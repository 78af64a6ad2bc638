"""Deciding, per analysed frame, what the detector sees: nothing, a few crops, or zone sweeps.

Three sources of work, cheapest first:
- motion: crops around what moved in a zone (the motion stage already ignores water texture
  and lighting changes);
- known objects: crops re-confirming what was found recently, every `recheck_s` when it stands
  still and on every frame when motion touches it;
- sweeps: each zone in one overview plus tiles, every `ZoneSettings.sweep_every_s` (finds what
  never moved: people fishing sit still for an hour), at once when the whole picture changed
  (lights, a camera moving), and on every frame in `every_frame` accuracy mode.

Between detector runs a known object that no region looked at is carried over for at most
`hold_s`: the zone counts of a stationary scene stay right without an inference per frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gridwatch.detectors.detection import Detection
from gridwatch.detectors.motion import MotionResult
from gridwatch.detectors.regions import Region, auto_grid, fit_aspect, grid_tiles, plan_crops
from gridwatch.detectors.zones import Zone

LookKind = Literal["idle", "regions", "sweep"]


@dataclass(frozen=True, slots=True)
class LookSettings:
    """Camera-wide tuning of where the detector looks (zone-level options are in ZoneSettings).

    - `max_crops`: crops per frame; a frame needing more sweeps the zones instead.
    - `crop_pad`: context around a motion box or known object, as a fraction of its size.
    - `recheck_s`: how often a known object that does not move is re-confirmed.
    - `hold_s`: how long a known object no region looked at is carried over.
    - `rescan_min_s`: after the whole picture changed, sweep at most this often.
    - `busy_cover`: crops covering this share of a tiled zone sweep it instead.
    - `zoom_below_px`: in `every_frame` mode, objects the sweep sees smaller than this (model
      input pixels) get a closer look.
    - `max_downscale`: `tiles: auto` keeps tiles shrunk at most about this much.
    - `active_hold_s`: `wants_active_mode` stays true this long after the last motion.
    """

    max_crops: int = 4
    crop_pad: float = 0.6
    recheck_s: float = 1.0
    hold_s: float = 2.5
    rescan_min_s: float = 2.0
    zoom_below_px: float = 64.0
    busy_cover: float = 0.5
    max_downscale: float = 1.6
    active_hold_s: float = 10.0


@dataclass(slots=True)
class LookPlan:
    """The regions to run for one frame, and why."""

    kind: LookKind
    regions: list[Region]
    swept: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Known:
    """An object the detector reported, kept so it can be re-confirmed and carried over."""

    det: Detection
    confirmed: float


def sweep_regions(zone: Zone, input_size: tuple[int, int], max_downscale: float
                  ) -> list[Region]:
    """One overview of the zone's bounding box, plus its tiles when it has any.

    The overview sees objects too large for a tile (a person close to the camera) and lets
    the merge recognise tile fragments; the tiles see the small ones.
    """
    x1, y1, x2, y2 = zone.bbox
    width, height = zone.width, zone.height
    aspect = input_size[0] / input_size[1]
    overview = Region(fit_aspect((x1, y1, x2, y2), aspect, width, height), "sweep", zone.id)
    spec = zone.spec
    if spec.tiles == "off":
        return [overview]
    if spec.tiles == "auto":
        cols, rows = auto_grid(x2 - x1, y2 - y1, input_size, max_downscale)
    else:
        cols, rows = spec.tiles
    if cols * rows == 1:
        return [overview]
    return [overview, *grid_tiles((x1, y1, x2, y2), cols, rows, spec.tile_overlap,
                                  zone=zone.id)]


class LookPlanner:
    """Per-camera state of the schedule: when each zone was last swept, what is known."""

    def __init__(self, zones: Sequence[Zone], input_size: tuple[int, int],
                 settings: LookSettings | None = None) -> None:
        self.settings = settings or LookSettings()
        self.zones = list(zones)
        self.input_size = input_size
        self._sweeps = {z.id: sweep_regions(z, input_size, self.settings.max_downscale)
                        for z in self.zones}
        self._last_sweep: dict[str, float] = {}
        self._last_rescan = -math.inf
        self.known: list[Known] = []

    def plan(self, t: float, motion: MotionResult, every_frame: bool = False) -> LookPlan:
        """Regions for the frame at media time `t` with its motion result."""
        s = self.settings
        due = self._due(t, motion, every_frame)
        regions = _unique([r for zone_id in due for r in self._sweeps[zone_id]])
        if every_frame:
            # Accuracy first: besides the sweep, a closer look at whatever it sees small.
            targets = [b for b in [*motion.boxes, *(k.det.box for k in self.known)]
                       if self._seen_px(b, regions) < s.zoom_below_px]
        else:
            targets = [b for b in motion.boxes if not _covered(b, regions)]
            targets += [k.det.box for k in self.known
                        if not _covered(k.det.box, regions)
                        and (t - k.confirmed >= s.recheck_s
                             or any(_overlaps(k.det.box, b) for b in motion.boxes))]
        if not targets:
            return LookPlan(_kind(due, regions), regions, due)
        width, height = self.zones[0].width, self.zones[0].height
        # The service schedule decides below between crops and sweeps; `every_frame` adds at
        # most `max_crops` close looks to its sweeps.
        crops = plan_crops(targets, (width, height), self.input_size, reason="track",
                           pad=s.crop_pad, max_crops=s.max_crops if every_frame else len(targets))
        crops = [Region(c.box, "motion") if any(_covered(b, [c]) for b in motion.boxes) else c
                 for c in crops]
        busy = [z for z in self.zones if z.id not in due and
                any(_overlaps(z.bbox, c.box) for c in crops)]
        if not every_frame and busy and self._busy(crops, busy):
            # Sweeping these zones costs no more inferences than the crops, or the crops cover
            # most of them anyway (at a coarser scale than the tiles): sweep instead. It counts
            # as their periodic sweep.
            for zone in busy:
                self._last_sweep[zone.id] = t
            due = [*due, *(z.id for z in busy)]
            crops = [r for z in busy for r in self._sweeps[z.id]]
        regions = _unique(regions + crops)
        return LookPlan(_kind(due, regions), regions, due)

    def _busy(self, crops: Sequence[Region], zones: Sequence[Zone]) -> bool:
        sweeps = sum(len(self._sweeps[z.id]) for z in zones)
        zone_area = sum((z.bbox[2] - z.bbox[0]) * (z.bbox[3] - z.bbox[1]) for z in zones)
        crop_area = sum(c.width * c.height for c in crops)
        return (len(crops) > self.settings.max_crops
                or (len(crops) > 1 and len(crops) >= sweeps)
                or (sweeps > 1 and crop_area >= self.settings.busy_cover * zone_area))

    def _due(self, t: float, motion: MotionResult, every_frame: bool) -> list[str]:
        """Zones whose sweep is due: all in `every_frame` mode and after a global change (at
        most every `rescan_min_s`), else those not swept for their `sweep_every_s`."""
        if every_frame:
            due = [z.id for z in self.zones]
        elif motion.global_change and t - self._last_rescan >= self.settings.rescan_min_s:
            self._last_rescan = t
            due = [z.id for z in self.zones]
        else:
            due = [z.id for z in self.zones
                   if t - self._last_sweep.get(z.id, -math.inf) >= z.spec.sweep_every_s]
        for zone_id in due:
            self._last_sweep[zone_id] = t
        return due

    def _seen_px(self, box: Sequence[float], regions: Sequence[Region]) -> float:
        """Size (longer side, model-input pixels) of `box` in the closest region seeing it."""
        side = max(box[2] - box[0], box[3] - box[1])
        in_w, in_h = self.input_size
        scales = [min(in_w / r.width, in_h / r.height) for r in regions if _covered(box, [r])]
        return side * max(scales, default=0.0)

    def remember(self, t: float, regions: Sequence[Region], found: Sequence[Detection]
                 ) -> list[Detection]:
        """Fold one frame's detections into what is known; returns the frame's detections:
        `found` plus known objects that no region looked at, for at most `hold_s`."""
        carried = [k for k in self.known
                   if not _covered(k.det.box, regions) and t - k.confirmed < self.settings.hold_s]
        self.known = [Known(d, t) for d in found] + carried
        return [*found, *(k.det for k in carried)]


def _kind(due: list[str], regions: list[Region]) -> LookKind:
    return "sweep" if due else ("regions" if regions else "idle")


def _unique(regions: list[Region]) -> list[Region]:
    seen: set[tuple[int, int, int, int]] = set()
    out = []
    for r in regions:
        if r.box not in seen:
            seen.add(r.box)
            out.append(r)
    return out


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _covered(box: Sequence[float], regions: Sequence[Region]) -> bool:
    """A region looked at this box: its centre is inside one."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(r.box[0] <= cx < r.box[2] and r.box[1] <= cy < r.box[3] for r in regions)
