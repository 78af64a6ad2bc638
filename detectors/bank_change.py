"""Bank change: lasting change of the ground in a zone (digging, dumping, a new pit or spoil).

Sand diggers leave the ground changed long after their machines are gone, so this does not
look for objects at all. It keeps a slowly learnt background of the zone (objects passing
through are diluted away, and cells under current detections are not learnt) and compares it,
cell by cell, with a reference background on illumination-normalised structure:

- normalised cross-correlation of the cell's pixels (unchanged by gain and offset, and close
  to unchanged by gamma, over a small cell), and
- the cell's texture strength relative to the zone's median texture (a flat patch becoming
  rough or a rough one smoothed; a global contrast change moves all cells together).

A cell is changed when it stays changed for `persist` observations in a row. Day and night,
rain, fog or an auto-exposure jump change nearly every cell at once: an observation in which
more than `lighting_share` of the cells differ is taken as lighting and does not count.
Only structure is compared: a flat patch that only turns darker or brighter (a wet patch, a
cloud shadow) is not a change.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gridwatch.settings.bank_change import BankChangeSettings

Box = tuple[float, float, float, float]


@dataclass(slots=True)
class ChangeReport:
    """One observation. `changed_share` is the share of the zone's cells changed for at least
    `persist` observations; `box` their extent in source pixels."""

    ready: bool
    lighting: bool
    instant_share: float
    changed_share: float
    box: Box | None


class BankChangeDetector:
    """Ground change inside one zone polygon (source pixels) of frames of one size."""

    def __init__(self, polygon: np.ndarray, width: int, height: int,
                 settings: BankChangeSettings | None = None) -> None:
        self.settings = s = settings or BankChangeSettings()
        poly = np.asarray(polygon, dtype=np.float32)
        x, y, w, h = cv2.boundingRect(np.round(poly).astype(np.int32))
        x2, y2 = min(x + w, width), min(y + h, height)
        x, y = max(x, 0), max(y, 0)
        self.crop = (x, y, x2, y2)
        scale = s.work_px / max(x2 - x, y2 - y)
        self.gw = max(1, round((x2 - x) * scale / s.cell_px))
        self.gh = max(1, round((y2 - y) * scale / s.cell_px))
        self.size = (self.gw * s.cell_px, self.gh * s.cell_px)
        self._sx = self.size[0] / (x2 - x)
        self._sy = self.size[1] / (y2 - y)
        mask = np.zeros(self.size[::-1], dtype=np.uint8)
        offset = np.array([x, y], dtype=np.float32)
        local = (poly - offset) * np.array([self._sx, self._sy], dtype=np.float32)
        cv2.fillPoly(mask, [np.round(local).astype(np.int32)], 1)
        self.valid = self._cells(mask.astype(np.float32)).mean(axis=(1, 3)) >= 0.5
        if not self.valid.any():
            raise ValueError("zone is too small for the bank change cell grid")
        self._recent: deque[np.ndarray] = deque(maxlen=s.history)
        self._bg = np.full(self.size[::-1], np.nan, dtype=np.float32)
        self._ref: np.ndarray | None = None
        self._seen = 0
        self._streak = np.zeros((self.gh, self.gw), dtype=np.int32)

    def _cells(self, img: np.ndarray) -> np.ndarray:
        c = self.settings.cell_px
        return img.reshape(self.gh, c, self.gw, c)

    def _prepare(self, gray: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = self.crop
        img = cv2.resize(gray[y1:y2, x1:x2], self.size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)

    def _pixels(self, cells: np.ndarray) -> np.ndarray:
        c = self.settings.cell_px
        return np.repeat(np.repeat(cells, c, axis=0), c, axis=1)

    def _covered(self, boxes: Sequence[Box]) -> np.ndarray:
        """Cells under current detections: objects, not ground."""
        covered = np.zeros((self.gh, self.gw), dtype=bool)
        x0, y0 = self.crop[:2]
        c = self.settings.cell_px
        for bx1, by1, bx2, by2 in boxes:
            cx1 = int(np.floor((bx1 - x0) * self._sx / c))
            cy1 = int(np.floor((by1 - y0) * self._sy / c))
            cx2 = int(np.ceil((bx2 - x0) * self._sx / c))
            cy2 = int(np.ceil((by2 - y0) * self._sy / c))
            covered[max(cy1, 0):max(cy2, 0), max(cx1, 0):max(cx2, 0)] = True
        return covered

    def observe(self, gray: np.ndarray, objects: Sequence[Box] = ()) -> ChangeReport:
        """Learn from one luma frame; `objects` are boxes of things standing on the ground."""
        s = self.settings
        img = self._prepare(gray)
        covered = self._covered(objects)
        # Cells under detected objects are left out, and the median forgets what passed
        # through in fewer than half of the recent looks, detected or not.
        img[self._pixels(covered)] = np.nan
        self._recent.append(img)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: nothing learnt
            median = np.nanmedian(np.stack(self._recent), axis=0)
        self._bg = np.where(np.isnan(median), self._bg, median)
        self._seen += 1
        if self._ref is None:
            if self._seen >= s.history:
                self.rebase()
            return ChangeReport(False, False, 0.0, 0.0, None)
        known = ~np.isnan(self._cells(self._bg).sum(axis=(1, 3)))
        changed = self.changed_cells(np.nan_to_num(self._bg), np.nan_to_num(self._ref))
        judged = self.valid & known & self._referenced & ~covered
        instant = float(changed[judged].mean()) if judged.any() else 0.0
        if instant > s.lighting_share:
            return ChangeReport(True, True, instant, self._share(), self._box())
        self._streak[judged & changed] += 1
        self._streak[judged & ~changed] = 0
        return ChangeReport(True, False, instant, self._share(), self._box())

    def changed_cells(self, bg: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Cells whose structure differs between two images of the zone."""
        s = self.settings
        a, b = self._cells(bg), self._cells(ref)
        da = a - a.mean(axis=(1, 3), keepdims=True)
        db = b - b.mean(axis=(1, 3), keepdims=True)
        sa = np.sqrt((da * da).mean(axis=(1, 3)))
        sb = np.sqrt((db * db).mean(axis=(1, 3)))
        ncc = (da * db).mean(axis=(1, 3)) / (sa * sb + 1e-6)
        # Texture relative to the zone's typical texture: a global contrast change cancels.
        ta = sa / max(float(np.median(sa[self.valid])), 1e-3)
        tb = sb / max(float(np.median(sb[self.valid])), 1e-3)
        floor = 0.35
        textured = (ta > floor) & (tb > floor) & (sa > 1.5) & (sb > 1.5)
        ratio = np.abs(np.log((ta + floor) / (tb + floor)))
        return (textured & (ncc < s.ncc_threshold)) | (ratio > np.log(s.texture_ratio))

    def _share(self) -> float:
        persistent = (self._streak >= self.settings.persist) & self.valid
        return float(persistent.sum() / self.valid.sum())

    def _box(self) -> Box | None:
        persistent = (self._streak >= self.settings.persist) & self.valid
        if not persistent.any():
            return None
        rows, cols = np.nonzero(persistent)
        c = self.settings.cell_px
        x0, y0 = self.crop[:2]
        return (x0 + cols.min() * c / self._sx, y0 + rows.min() * c / self._sy,
                x0 + (cols.max() + 1) * c / self._sx, y0 + (rows.max() + 1) * c / self._sy)

    def rebase(self) -> None:
        """Take the ground as learnt now as the reference (at start, and after a change was
        reported, so that only a new change is reported next)."""
        self._ref = self._bg.copy()
        self._referenced = ~np.isnan(self._cells(self._ref).sum(axis=(1, 3)))
        self._streak[:] = 0
