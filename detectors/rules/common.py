"""What every rule shares: the observation it reads, the settings of its episode, what a
condition reports when it holds.

A rule is one episode (start, updates, end: one incident) over one or more conditions; it is
on while any condition holds. Several conditions share one episode so that, for example, a
crowd that gathers and then surges is one incident that escalates, not two that flap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gridwatch.common.severity import Severity
from gridwatch.detectors.detection import Detection

if TYPE_CHECKING:
    from gridwatch.detectors.tracking import Track
    from gridwatch.detectors.zones import Zone
    from gridwatch.ingest.frame import Frame




@dataclass(slots=True)
class ZoneObservation:
    """What one analysed frame shows inside one zone.

    `detections` are the frame's detections whose foot point is in the zone; `tracks` the
    tracks seen in this frame inside the zone (their dwell, stationarity and speed); `region`
    the zone's geometry bound to the frame size (for rules that look at pixels or areas).
    """

    camera: str
    zone: str
    t: float
    wall: float
    detections: list[Detection]
    frame: Frame | None = None
    details: dict = field(default_factory=dict)
    tracks: list[Track] = field(default_factory=list)
    region: Zone | None = None


@dataclass(slots=True)
class Finding:
    """A condition holding in one frame, with its evidence."""

    objects: dict[str, int]
    detections: list[Detection]
    score: float
    details: dict = field(default_factory=dict)
    severity: Severity | None = None


class Condition(Protocol):
    """One reason for a rule to be on. `evaluate` runs on every observation (also outside the
    rule's time windows) so that baselines and backgrounds keep learning."""

    name: str
    classes: frozenset[str]

    def evaluate(self, obs: ZoneObservation) -> Finding | None: ...


class Sustained:
    """A raw per-frame condition that must hold for `duration_s`, forgiving gaps up to
    `tolerance_s` (a missed detection is not the crowd leaving)."""

    def __init__(self, duration_s: float, tolerance_s: float) -> None:
        self.duration_s = duration_s
        self.tolerance_s = tolerance_s
        self._since: float | None = None
        self._last_true = 0.0

    def update(self, t: float, holds: bool) -> bool:
        if not holds:
            return False
        if self._since is None or t - self._last_true > self.tolerance_s:
            self._since = t
        self._last_true = t
        return t - self._since >= self.duration_s

    def held_for(self, t: float) -> float:
        return 0.0 if self._since is None else t - self._since


def count_objects(detections: list[Detection]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in detections:
        counts[d.cls] = counts.get(d.cls, 0) + 1
    return counts
