"""Camera health: its states, how a camera got into one, and the record the API shows.

The records are pydantic models so that the web side can declare them as response models and
a worker can pickle them into its heartbeat.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class CameraState(StrEnum):
    """Where a camera stands; the error states say what a human has to fix."""

    CONNECTING = "connecting"
    ONLINE = "online"
    STALLED = "stalled"
    """Connected, but frames stopped arriving (a frozen camera or a hung server)."""
    OFFLINE = "offline"
    """Unreachable, refused, closed the stream, or a file that ended."""
    AUTH_FAILED = "auth_failed"
    NOT_FOUND = "not_found"
    UNSUPPORTED = "unsupported"
    """Answers, but not with a stream we can decode (wrong protocol, codec, garbage)."""


REJECTED = frozenset({CameraState.AUTH_FAILED, CameraState.NOT_FOUND, CameraState.UNSUPPORTED})
"""Answers a retry rarely changes: retried slowly so a camera is not hammered."""


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition; `since` is the Unix time it happened."""

    state: CameraState
    reason: str
    since: float
    previous: CameraState | None = None

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state.value, "reason": self.reason, "since": self.since,
                "previous": self.previous.value if self.previous else None}


class StateHistory:
    """A camera's current state and its recent changes, kept the same way by the reader that
    sees them happen (`CameraRunner`) and by the main process that hears of them over a
    worker's pipe (`gridwatch.worker.cameras.CameraStatus`). Not thread-safe: its owner
    locks."""

    def __init__(self, state: CameraState, reason: str, since: float,
                 history_size: int = 50) -> None:
        self.state, self.reason, self.since = state, reason, since
        self._changes: deque[StateChange] = deque(maxlen=history_size)

    def set(self, state: CameraState, reason: str, at: float) -> StateChange | None:
        """Record a change of state or reason at Unix time `at`; `since` moves only when the
        state itself changes. None when nothing changed."""
        if state is self.state and reason == self.reason:
            return None
        previous = self.state
        if state is not previous:
            self.since = at
        self.state, self.reason = state, reason
        change = StateChange(state, reason, at, previous)
        self._changes.append(change)
        return change

    def recent(self, count: int | None = 10) -> list[StateChange]:
        """The last `count` changes (None: all that are kept), oldest first."""
        changes = list(self._changes)
        return changes if count is None else changes[-count:]


class StreamCounters(BaseModel):
    """A camera's counters as the API shows them (`gridwatch.ingest.counters.CameraCounters`)."""

    frames_received: int = 0
    frames_decoded: int = 0
    frames_dropped: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    analysed: int = 0
    bytes_received: int = 0
    bitrate_bps: int = 0
    last_frame_age_s: float | None = None


CUMULATIVE_COUNTERS = ("frames_received", "frames_decoded", "frames_dropped", "decode_errors",
                       "reconnects", "analysed", "bytes_received")
"""The `StreamCounters` that only grow, so that a restarted reader's are added to its
predecessor's."""


class StreamHealth(BaseModel):
    """One reader's view of its camera (`CameraRunner.status`); never holds credentials."""

    camera_id: str
    uri: str
    state: CameraState
    reason: str
    since: float
    running: bool
    keyframes_only: bool
    counters: StreamCounters
    recent_changes: list[StateChange]
    packet_buffer: dict[str, Any] | None


class DecodeMode(BaseModel):
    """Watch (keyframes only) or active decoding, configured and current
    (`gridwatch.worker.adaptive.ModeSwitch`); `current` is None until the camera's worker
    first reports."""

    configured: str
    current: str | None
    since: float | None = None
    switches: int = 0
    quiet_s: float | None = None


class WorkerRef(BaseModel):
    """The worker process that runs a camera (`pid` None while it is down)."""

    index: int
    pid: int | None


class ZoneOutline(BaseModel):
    """A zone as the console draws it."""

    id: str
    name: str | None
    polygon: list[tuple[float, float]]
    rules: list[str]


@dataclass(frozen=True, slots=True)
class AnalysedFrame:
    """A frame the detection core analysed: its size, per-zone counts, the decode mode it was
    analysed in and its detections (JSON-ready dicts, made once in the worker). A plain
    dataclass: one crosses a worker's pipe for every analysed frame."""

    t: float
    wall: float
    zones: dict[str, dict[str, int]]
    width: int
    height: int
    keyframe: bool
    mode: str
    detections: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        """The frame as the live view sends it (the detections list itself, not a copy)."""
        return {"t": self.t, "wall": self.wall, "zones": self.zones, "width": self.width,
                "height": self.height, "keyframe": self.keyframe, "mode": self.mode,
                "detections": self.detections}


class PreviewInfo(BaseModel):
    """The camera wall's newest picture of a camera (`seq` 0: none yet)."""

    seq: int = 0
    wall: float | None = None
    width: int | None = None
    height: int | None = None
    wanted: bool | None = None


class CameraHealth(BaseModel):
    """Everything the API (`/api/cameras`), the console and the metrics show of a camera;
    built in one place (`gridwatch.worker.cameras.CameraStatus.health`)."""

    id: str
    name: str
    grid_cell: str | None
    state: CameraState
    reason: str
    since: float
    stream: str
    keyframes_only: bool | None
    mode: DecodeMode
    worker: WorkerRef
    counters: StreamCounters
    analysis_cost: dict[str, Any] | None
    zones: list[ZoneOutline]
    last_analysis: AnalysedFrame | None
    preview: PreviewInfo
    recent_changes: list[StateChange]
