"""Zone rules: turn per-frame zone contents into start/update/end events.

A rule holds a small state machine so that a condition becomes one event sequence
(start once, updates while it holds, end once) rather than one event per frame. Timing uses
media time, so rules behave the same whether every frame or only keyframes are analysed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from detectors.detection import Detection
from detectors.events import Event

log = logging.getLogger(__name__)

Severity = Literal["low", "medium", "high", "critical"]


class PresenceRuleSpec(BaseModel):
    """Objects of these classes present in the zone for at least `min_dwell_s`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["presence"] = "presence"
    id: str | None = Field(default=None, description="Defaults to the kind.")
    kind: str = Field(default="presence", min_length=1, description="Incident kind it raises.")
    classes: list[str] = Field(min_length=1)
    min_count: int = Field(default=1, ge=1)
    min_dwell_s: float = Field(default=5.0, ge=0)
    end_after_s: float = Field(
        default=10.0, ge=0, description="The condition must be absent this long to end.",
    )
    min_score: float = Field(default=0.3, ge=0, le=1)
    severity: Severity = "medium"
    update_every_s: float = Field(default=10.0, gt=0)

    @property
    def rule_id(self) -> str:
        return self.id or self.kind


RuleSpec = Annotated[PresenceRuleSpec, Field(discriminator="type")]


@dataclass(slots=True)
class ZoneObservation:
    """What one analysed frame shows inside one zone."""

    camera: str
    zone: str
    t: float
    wall: float
    detections: list[Detection]
    frame: object | None = None
    details: dict = field(default_factory=dict)


class PresenceRule:
    """State machine for `PresenceRuleSpec`: idle -> pending -> active -> idle."""

    def __init__(self, spec: PresenceRuleSpec) -> None:
        self.spec = spec
        self._classes = frozenset(spec.classes)
        self._since: float | None = None
        self._active = False
        self._last_seen = 0.0
        self._last_update = 0.0
        self._last_counts: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self._active

    def relevant(self, detections: list[Detection]) -> list[Detection]:
        return [
            d for d in detections if d.cls in self._classes and d.score >= self.spec.min_score
        ]

    def observe(self, obs: ZoneObservation) -> Event | None:
        hits = self.relevant(obs.detections)
        counts: dict[str, int] = {}
        for d in hits:
            counts[d.cls] = counts.get(d.cls, 0) + 1
        holds = len(hits) >= self.spec.min_count

        if holds:
            self._last_seen = obs.t
            if self._since is None:
                self._since = obs.t
            if not self._active and obs.t - self._since >= self.spec.min_dwell_s:
                self._active = True
                self._last_update = obs.t
                self._last_counts = counts
                return self._event("start", obs, hits, counts)
            if self._active and (
                counts != self._last_counts
                or obs.t - self._last_update >= self.spec.update_every_s
            ):
                self._last_update = obs.t
                self._last_counts = counts
                return self._event("update", obs, hits, counts)
            return None

        if self._active and obs.t - self._last_seen >= self.spec.end_after_s:
            self._active = False
            self._since = None
            return self._event("end", obs, [], {}, with_frame=False)
        if not self._active and self._since is not None and obs.t - self._last_seen > (
            self.spec.end_after_s
        ):
            self._since = None
        return None

    def finish(self, t: float, wall: float, camera: str, zone: str) -> Event | None:
        """Close an active condition when the stream ends (files, shutdown)."""
        if not self._active:
            return None
        self._active = False
        self._since = None
        obs = ZoneObservation(camera, zone, t, wall, [])
        return self._event("end", obs, [], {}, with_frame=False)

    def _event(
        self, phase: str, obs: ZoneObservation, hits: list[Detection], counts: dict[str, int],
        with_frame: bool = True,
    ) -> Event:
        score = sum(d.score for d in hits)
        return Event(
            kind=self.spec.kind,
            rule=self.spec.rule_id,
            camera=obs.camera,
            zone=obs.zone,
            phase=phase,  # type: ignore[arg-type]
            t=obs.t,
            wall=obs.wall,
            severity=self.spec.severity,
            objects=counts,
            detections=hits,
            frame=obs.frame if with_frame else None,  # type: ignore[arg-type]
            score=score,
            details=dict(obs.details),
        )


def build_rule(spec: RuleSpec) -> PresenceRule:
    return PresenceRule(spec)
