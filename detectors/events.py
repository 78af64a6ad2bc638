"""What the rules emit: the start, progress and end of a condition in a zone.

An event is not an incident: alerts turns a start/update/end sequence into one incident,
deduplicated per (camera, zone, kind), and decides what is stored and announced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gridwatch.detectors.detection import Detection
    from gridwatch.ingest.frame import Frame

Phase = Literal["start", "update", "end"]


def dedup_key(camera: str, zone: str, kind: str) -> str:
    """The key of the condition an event belongs to, the same on both sides of the process
    boundary: alerts keeps one open incident per key, a camera worker names its clips by it.

    JSON keeps the key unambiguous whatever characters the names hold.
    """
    return json.dumps([camera, zone, kind], separators=(",", ":"))


@dataclass(slots=True)
class Event:
    """One change of a rule's condition.

    `t` is media time of the frame that caused it; `wall` its Unix time. `frame` and
    `detections` are the evidence candidates (the frame is None on `end`, which only
    closes). `score` ranks evidence frames so the incident keeps its best snapshot.
    """

    kind: str
    rule: str
    camera: str
    zone: str
    phase: Phase
    t: float
    wall: float
    severity: str
    objects: dict[str, int]
    detections: list[Detection] = field(default_factory=list)
    frame: Frame | None = None
    score: float = 0.0
    details: dict = field(default_factory=dict)
