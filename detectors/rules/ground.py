"""Ground change as a rule condition: the bank change detector run every `every_s` seconds.

A reported change is accepted as the new reference at once, so one digging episode gives one
report and the next report needs new digging; the incident shows the changed area as a box.
"""

from __future__ import annotations

import logging

from gridwatch.common.severity import Severity
from gridwatch.detectors.bank_change import BankChangeDetector
from gridwatch.detectors.detection import Detection
from gridwatch.detectors.rules.common import Finding, ZoneObservation
from gridwatch.settings.bank_change import BankChangeSettings

log = logging.getLogger(__name__)


class GroundChangeCheck:
    """Looks at the zone's ground on its own slow schedule; between looks its last verdict
    stands, so the episode sees a steady condition."""

    classes: frozenset[str] = frozenset()

    def __init__(
        self, settings: BankChangeSettings, severity: Severity | None = None,
        name: str = "ground_change",
    ) -> None:
        self.name = name
        self.settings = settings
        self.severity = severity
        self._detector: BankChangeDetector | None = None
        self._size: tuple[int, int] | None = None
        self._next_t: float | None = None
        self._last: Finding | None = None

    def evaluate(self, obs: ZoneObservation) -> Finding | None:
        region, frame = obs.region, obs.frame
        if region is None or frame is None:
            return self._last
        if self._next_t is not None and obs.t < self._next_t:
            return self._last
        self._next_t = obs.t + self.settings.every_s
        if self._size != (region.width, region.height) or self._detector is None:
            self._size = (region.width, region.height)
            self._detector = BankChangeDetector(region.polygon, region.width, region.height,
                                                self.settings)
        report = self._detector.observe(frame.gray(), [d.box for d in obs.detections])
        self._last = None
        if report.lighting:
            log.debug("%s/%s: ground looks different everywhere: taken as lighting",
                      obs.camera, obs.zone)
        elif report.changed_share >= self.settings.min_changed_share and report.box is not None:
            area = Detection("ground change", -1, round(report.changed_share, 4), report.box)
            self._last = Finding(
                objects={}, detections=[area], score=report.changed_share,
                details={"changed_share": round(report.changed_share, 4),
                         "box": [round(v, 1) for v in report.box]},
                severity=self.severity,
            )
            log.info("%s/%s: ground changed on %.0f%% of the zone", obs.camera, obs.zone,
                     100 * report.changed_share)
            self._detector.rebase()
        return self._last
