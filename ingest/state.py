"""Camera health states and the record of how a camera got into one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
