"""Cheap first stage: where in the zones did something move, from the luma plane at low size.

A per-pixel running background with a per-pixel variance: a pixel is foreground when it
departs from its background by more than `k` of its own standard deviation (and at least
`min_diff` grey levels). Water, leaves and flicker keep a high variance, so they raise their
own threshold instead of keeping the detector busy; a still road keeps a low one and stays
sensitive. Everything that changes at once (lighting, auto-exposure, a camera moving) is seen
as a global change: the shift common to all pixels is taken out first, and a frame where most
of the watched area still differs resets the background instead of reporting motion.

Adaptation rates are per second of media time, so the model behaves the same whether it sees
every frame or only keyframes. Runs at about 320 px wide from the luma plane, resized with
INTER_LINEAR (INTER_AREA costs several times more for no gain here; figures in
docs/detection-core.md), so no BGR conversion is needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from gridwatch.detectors.costs import RunningMs

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """Tuning of the motion stage; the defaults were set on the shared real footage (the sea
    clip's waves stay quiet, a walker indoors and a person on the CCTV road are found).

    - `width`: working width in pixels (height keeps the aspect).
    - `k`, `min_diff`: a pixel moves when it departs from its background by more than `k` of its
      own standard deviation and by more than `min_diff` grey levels.
    - `background_tau_s`, `variance_tau_s`: time constants of the running mean and variance;
      `foreground_slowdown` makes moving pixels adapt that many times slower, so a person who
      stops is absorbed after tens of seconds (the planner's sweeps keep finding them).
    - `global_fraction`: share of the watched area changing at once that makes a global change.
    - `min_blob_fraction`: smallest moving blob, as a share of the working frame.
    - `initial_std`, `max_std`: starting texture estimate, and the cap of one frame's squared
      difference in the variance update (one passing object must not deafen a pixel for long).
    """

    width: int = 320
    k: float = 5.0
    min_diff: float = 12.0
    background_tau_s: float = 4.0
    variance_tau_s: float = 8.0
    foreground_slowdown: float = 3.0
    global_fraction: float = 0.35
    min_blob_fraction: float = 0.0006
    initial_std: float = 4.0
    max_std: float = 40.0


@dataclass(slots=True)
class MotionResult:
    """What moved in one frame: boxes in source pixels and, per zone, the fraction of its area
    that moved. `global_change` marks frames where the whole picture changed at once; they
    report no boxes because none of them would mean anything."""

    boxes: list[Box]
    zone_activity: dict[str, float]
    changed_fraction: float
    global_change: bool
    warming_up: bool
    ms: float


@dataclass(slots=True)
class _State:
    """Background model over the watched part (bounding box of the zones) of the small frame."""

    size: tuple[int, int]
    source: tuple[int, int]
    roi: tuple[int, int, int, int]
    mean: np.ndarray
    var: np.ndarray
    t: float
    mask: np.ndarray
    mask_pixels: int
    zone_masks: dict[str, np.ndarray] = field(default_factory=dict)
    zone_pixels: dict[str, int] = field(default_factory=dict)


class MotionDetector:
    """Motion of one camera. Not thread-safe; one per camera.

    `set_zones` takes zone id -> uint8 mask (any size; resized once) of where motion matters;
    without zones the whole frame is watched. Only the bounding box of the zones is modelled.
    """

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self.cost = RunningMs()
        self._state: _State | None = None
        self._zone_masks: dict[str, np.ndarray] = {}
        self._kernel_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._kernel_join = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))

    def set_zones(self, zone_masks: Mapping[str, np.ndarray]) -> None:
        self._zone_masks = dict(zone_masks)
        self._state = None

    def update(self, gray: np.ndarray, t: float) -> MotionResult:
        """Feed one luma frame taken at media time `t` (seconds)."""
        start = time.perf_counter()
        state = self._state
        if state is None or state.source != (gray.shape[1], gray.shape[0]):
            self._state = self._init_state(gray, t)
            return self._finish(start, [], {}, 0.0, False, True)
        result = self._step(state, self._small(gray, state), t)
        return self._finish(start, *result)

    def _small_size(self, gray: np.ndarray) -> tuple[int, int]:
        h, w = gray.shape[:2]
        width = min(self.settings.width, w)
        return width, max(1, round(h * width / w))

    def _small(self, gray: np.ndarray, st: _State) -> np.ndarray:
        if st.size != (gray.shape[1], gray.shape[0]):
            gray = cv2.resize(gray, st.size, interpolation=cv2.INTER_LINEAR)
        x1, y1, x2, y2 = st.roi
        blurred = cv2.GaussianBlur(gray[y1:y2, x1:x2], (5, 5), 0)
        return blurred.astype(np.float32)

    def _init_state(self, gray: np.ndarray, t: float) -> _State:
        s = self.settings
        w, h = self._small_size(gray)
        full: dict[str, np.ndarray] = {
            zone_id: cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
            for zone_id, m in self._zone_masks.items()
        }
        union = np.zeros((h, w), np.uint8) if full else np.full((h, w), 255, np.uint8)
        for m in full.values():
            cv2.bitwise_or(union, m, dst=union)
        bx, by, bw, bh = cv2.boundingRect(union)
        if bw == 0 or bh == 0:
            bx, by, bw, bh = 0, 0, w, h
        roi = (bx, by, bx + bw, by + bh)
        mask = np.ascontiguousarray(union[by:by + bh, bx:bx + bw])
        zone_masks = {k: np.ascontiguousarray(m[by:by + bh, bx:bx + bw]) for k, m in full.items()}
        st = _State(
            size=(w, h), source=(gray.shape[1], gray.shape[0]), roi=roi,
            mean=np.empty((bh, bw), np.float32),
            var=np.full((bh, bw), s.initial_std**2, dtype=np.float32), t=t,
            mask=mask, mask_pixels=max(1, cv2.countNonZero(mask)), zone_masks=zone_masks,
            zone_pixels={k: max(1, cv2.countNonZero(m)) for k, m in zone_masks.items()},
        )
        st.mean[...] = self._small(gray, st)
        return st

    def _step(self, st: _State, small: np.ndarray, t: float
              ) -> tuple[list[Box], dict[str, float], float, bool, bool]:
        s = self.settings
        dt = max(1e-3, t - st.t)
        st.t = t
        diff: np.ndarray = cv2.subtract(small, st.mean)
        # Lighting and exposure shift every pixel together: take the common shift out.
        sample = diff[::4, ::4][st.mask[::4, ::4] > 0]
        if sample.size:
            diff -= float(np.median(sample))
        sq = cv2.multiply(diff, diff)
        threshold = cv2.max(st.var * (s.k * s.k), s.min_diff * s.min_diff)
        fg = cv2.bitwise_and(cv2.compare(sq, threshold, cv2.CMP_GT), st.mask)
        changed = cv2.countNonZero(fg) / st.mask_pixels
        if changed > s.global_fraction:
            # The picture changed as a whole: start over from this frame, keep the texture
            # estimate (water stays water after a cloud passes).
            st.mean[...] = small
            return [], {}, changed, True, False
        a_bg = 1.0 - math.exp(-dt / s.background_tau_s)
        a_var = 1.0 - math.exp(-dt / s.variance_tau_s)
        still = cv2.bitwise_not(fg)
        cv2.accumulateWeighted(small, st.mean, a_bg, mask=still)
        cv2.accumulateWeighted(small, st.mean, a_bg / s.foreground_slowdown, mask=fg)
        np.minimum(sq, s.max_std * s.max_std, out=sq)
        cv2.accumulateWeighted(sq, st.var, a_var, mask=still)
        cv2.accumulateWeighted(sq, st.var, a_var / s.foreground_slowdown, mask=fg)
        if changed == 0:
            return [], dict.fromkeys(st.zone_masks, 0.0), 0.0, False, False
        clean = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel_open)
        activity = {
            zone_id: cv2.countNonZero(cv2.bitwise_and(clean, m)) / st.zone_pixels[zone_id]
            for zone_id, m in st.zone_masks.items()
        }
        return self._boxes(clean, st), activity, changed, False, False

    def _boxes(self, clean: np.ndarray, st: _State) -> list[Box]:
        joined = cv2.dilate(clean, self._kernel_join)
        contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        w, h = st.size
        min_area = self.settings.min_blob_fraction * w * h
        sx, sy = st.source[0] / w, st.source[1] / h
        ox, oy = st.roi[:2]
        boxes = []
        for contour in contours:
            x, y, bw, bh = cv2.boundingRect(contour)
            # Count only the pixels that moved, not the dilation around them.
            if cv2.countNonZero(clean[y:y + bh, x:x + bw]) < min_area:
                continue
            x, y = x + ox, y + oy
            boxes.append((int(x * sx), int(y * sy), min(st.source[0], math.ceil((x + bw) * sx)),
                          min(st.source[1], math.ceil((y + bh) * sy))))
        return boxes

    def _finish(self, start: float, boxes: list[Box], activity: dict[str, float],
                changed: float, global_change: bool, warming: bool) -> MotionResult:
        ms = (time.perf_counter() - start) * 1000
        self.cost.add(ms)
        return MotionResult(boxes, activity, changed, global_change, warming, ms)
