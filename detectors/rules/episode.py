"""The episode of a rule: one start, throttled updates carrying the best evidence, one end.

A rule never floods: however long its condition holds and however its counts flicker, it
sends one start, at most one update per `update_every_s` (sooner only when it escalates: a
new condition joins or the severity rises) and one end. Each update carries the best-scoring
frame seen since the previous event, so the incident keeps the clearest evidence; when the
episode is about to end with evidence better than any it sent (an episode shorter than
`update_every_s`), that evidence goes out as a last update and the end follows one frame later.
Everything runs on media time `t`, so sparse keyframes and 5 fps give the same timing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gridwatch.common.severity import SEVERITY_RANK, Severity
from gridwatch.detectors.detection import Detection
from gridwatch.detectors.events import Event
from gridwatch.detectors.rules.common import Condition, Finding, ZoneObservation
from gridwatch.detectors.rules.timewindows import armed
from gridwatch.settings.rules import RuleCommonSettings

log = logging.getLogger(__name__)

#: Even with nothing new to say, an active episode reports this often, so that the incident's
#: "last seen" stays true while the condition holds.
KEEPALIVE_S = 60.0


@dataclass(slots=True)
class _Evidence:
    obs: ZoneObservation
    findings: dict[str, Finding]
    score: float


class Rule:
    """A rule bound to one zone of one camera: its conditions and its episode state."""

    def __init__(self, spec: RuleCommonSettings, conditions: list[Condition], label: str) -> None:
        self.spec = spec
        self.conditions = conditions
        self.label = label
        self.classes = frozenset(c for cond in conditions for c in cond.classes)
        self._active = False
        self._since: float | None = None
        self._last_true = 0.0
        self._cooldown_until = float("-inf")
        self._started = 0.0
        self._peak: dict[str, int] = {}
        self._best: _Evidence | None = None
        self._sent_t = 0.0
        self._sent_objects: dict[str, int] = {}
        self._sent_score = 0.0
        self._reported: frozenset[str] = frozenset()
        self._sent_severity: Severity = spec.severity
        self._sent_best = 0.0

    @property
    def active(self) -> bool:
        return self._active

    def observe(self, obs: ZoneObservation) -> Event | None:
        findings = {}
        for cond in self.conditions:
            found = cond.evaluate(obs)
            if found is not None:
                findings[cond.name] = found
        if not armed(self.spec.windows, obs.wall):
            self._since = None
            if self._active:
                return self._flush(obs) or self._end(obs, "outside the rule's time windows")
            return None
        if findings:
            return self._holding(obs, findings)
        if self._active and obs.t - self._last_true >= self.spec.end_after_s:
            return self._flush(obs) or self._end(obs, "condition no longer holds")
        if not self._active and self._since is not None and (
            obs.t - self._last_true > self.spec.end_after_s
        ):
            self._since = None
        return None

    def finish(self, t: float, wall: float, camera: str, zone: str) -> Event | None:
        """Close an active episode when the stream ends (end of a file, shutdown); evidence
        better than any sent rides on this end event, as there is no frame after it."""
        if not self._active:
            return None
        best = self._best if self._best is not None and self._best.score > self._sent_best else None
        end = self._end(ZoneObservation(camera, zone, t, wall, []), "stream ended")
        if best is not None:
            end.frame = best.obs.frame
            end.detections = _detections(best.findings)
            end.score = best.score
            end.details["evidence_t"] = round(best.obs.t, 3)
        return end

    def _flush(self, obs: ZoneObservation) -> Event | None:
        """Before an end: an update with the best evidence since the last event, when it
        beats everything sent, so that a short episode (shorter than `update_every_s`) keeps
        its best frame. The end follows on the next observation."""
        best = self._best
        if best is None or best.score <= self._sent_best:
            return None
        return self._send("update", obs, best)

    def _holding(self, obs: ZoneObservation, findings: dict[str, Finding]) -> Event | None:
        t = obs.t
        if self._since is None or t - self._last_true > self.spec.end_after_s:
            self._since = t
            if not self._active:
                self._peak = {}
        self._last_true = t
        for f in findings.values():
            for cls, n in f.objects.items():
                self._peak[cls] = max(self._peak.get(cls, 0), n)
        evidence = _Evidence(obs, findings, sum(f.score for f in findings.values()))
        if not self._active:
            if t - self._since < self.spec.start_after_s or t < self._cooldown_until:
                return None
            self._active = True
            self._started = t
            self._reported = frozenset()
            self._sent_severity = self.spec.severity
            self._sent_best = 0.0
            return self._send("start", obs, evidence)
        if self._best is None or evidence.score > self._best.score:
            self._best = evidence
        # Escalation skips the throttle, and can happen only a bounded number of times per
        # episode: a condition reported for the first time, or a severity never sent before.
        escalates = bool(frozenset(findings) - self._reported) or (
            SEVERITY_RANK[_severity(self.spec.severity, findings)]
            > SEVERITY_RANK[self._sent_severity]
        )
        since_sent = t - self._sent_t
        news = self._peak != self._sent_objects or self._best.score > self._sent_score
        if escalates:
            return self._send("update", obs, evidence)
        if since_sent >= self.spec.update_every_s and (news or since_sent >= KEEPALIVE_S):
            return self._send("update", obs, self._best)
        return None

    def _send(self, phase: str, obs: ZoneObservation, ev: _Evidence) -> Event:
        """An event at the time of `obs` carrying the evidence of `ev` (maybe an earlier frame)."""
        severity = _severity(self.spec.severity, ev.findings)
        if SEVERITY_RANK[severity] > SEVERITY_RANK[self._sent_severity]:
            self._sent_severity = severity
        details = dict(ev.obs.details)
        details.update(
            rule=self.label,
            conditions={name: f.details for name, f in ev.findings.items()},
            evidence_t=round(ev.obs.t, 3),
            active_s=round(obs.t - self._started, 3),
        )
        self._sent_t = obs.t
        self._sent_objects = dict(self._peak)
        self._sent_score = ev.score
        self._sent_best = max(self._sent_best, ev.score)
        self._reported |= frozenset(ev.findings)
        self._best = None
        log.debug("%s %s (%s) in %s/%s", self.spec.kind, phase, self.label, obs.camera, obs.zone)
        return Event(
            kind=self.spec.kind, rule=self.spec.rule_id, camera=obs.camera, zone=obs.zone,
            phase=phase,  # type: ignore[arg-type]
            t=obs.t, wall=obs.wall, severity=self._sent_severity, objects=dict(self._peak),
            detections=_detections(ev.findings), frame=ev.obs.frame,
            score=ev.score, details=details,
        )

    def _end(self, obs: ZoneObservation, reason: str) -> Event:
        self._active = False
        self._since = None
        self._best = None
        self._peak = {}
        self._cooldown_until = obs.t + self.spec.cooldown_s
        details = dict(obs.details)
        details.update(rule=self.label, reason=reason, last_seen_t=round(self._last_true, 3),
                       duration_s=round(self._last_true - self._started, 3))
        return Event(
            kind=self.spec.kind, rule=self.spec.rule_id, camera=obs.camera, zone=obs.zone,
            phase="end", t=obs.t, wall=obs.wall, severity=self._sent_severity,
            objects={}, detections=[], frame=None, score=0.0, details=details,
        )


def _detections(findings: dict[str, Finding]) -> list[Detection]:
    """The findings' detections, each once (two conditions may count the same object)."""
    out: list[Detection] = []
    seen: set[int] = set()
    for f in findings.values():
        for d in f.detections:
            if id(d) not in seen:
                seen.add(id(d))
                out.append(d)
    return out


def _severity(base: Severity, findings: dict[str, Finding]) -> Severity:
    """The rule's severity raised to that of the worst condition holding."""
    severity = base
    for f in findings.values():
        if f.severity is not None and SEVERITY_RANK[f.severity] > SEVERITY_RANK[severity]:
            severity = f.severity
    return severity
