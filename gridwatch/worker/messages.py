"""What a camera shard tells the process that owns the incident store, and how it is sent.

A shard (`gridwatch.worker.shard`) runs in a worker process or, with `workers.count: 0`, in
the main process; either way it only ever talks through an `Output`. Messages are plain
picklable tuples: an event carries its evidence frame as a BGR array (`detach_event`), never
the decoder's `av.VideoFrame`.

Two kinds of delivery, chosen by the sender:
- reliable (`events`, `state` changes, `clip`s, `hello`): small and rare, never dropped;
- latest-only (`health`, `result`, `preview`): one slot per kind and camera, a newer message
  replaces one not yet sent, so a slow receiver costs a worker neither time nor memory.

The other way, the main process tells a worker over its control pipe to stop, or which
cameras' previews someone is looking at (`WantPreviews`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from gridwatch.detectors.events import Event
from gridwatch.ingest.frame import Frame


class Kind(StrEnum):
    HELLO = "hello"
    """A worker is up: `{"pid", "cameras"}`."""
    HEALTH = "health"
    """Heartbeat: `{"pid", "cpu_s", "rss_bytes", "analysis_age_s", "cameras": [...]}`."""
    STATE = "state"
    """A camera changed state: `StateChange.as_dict()`."""
    EVENT = "event"
    """A rule event (`gridwatch.detectors.events.Event`, frame detached)."""
    CLIP = "clip"
    """An evidence clip was written: `gridwatch.worker.clips.Clip`."""
    RESULT = "result"
    """One analysed frame for the live view: t, wall, size, zones, detections, mode."""
    PREVIEW = "preview"
    """The camera wall's picture: `Preview`."""


RELIABLE = frozenset({Kind.HELLO, Kind.STATE, Kind.EVENT, Kind.CLIP})


class Message(NamedTuple):
    kind: Kind
    camera: str | None
    body: Any


class Output(Protocol):
    """Where a shard sends its messages; `send` never blocks on the receiver."""

    def send(self, message: Message) -> None: ...


@dataclass(frozen=True, slots=True)
class Preview:
    """A small JPEG of a camera's newest frame; `width`/`height` are the source frame's."""

    jpeg: bytes
    wall: float
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class WantPreviews:
    """Main process to worker: someone looks at these cameras' pictures, so encode them at
    the full preview rate for the given seconds (camera id to seconds, counted from receipt:
    the two processes share no deadline clock they could rely on)."""

    cameras: dict[str, float]


def detach_event(event: Event) -> Event:
    """A copy of `event` that can cross a process boundary and outlive the decoder.

    The evidence frame becomes a BGR copy: the original holds a decoder buffer that the
    decoder reuses, and an `av.VideoFrame` cannot be pickled.
    """
    frame = event.frame
    if frame is None or frame.video_frame is None:
        return event
    detached = Frame.from_bgr(frame.camera_id, frame.index, frame.t, frame.wall,
                              frame.bgr().copy(), frame.keyframe)
    return dataclasses.replace(event, frame=detached)
