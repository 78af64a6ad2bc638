"""What a camera shard tells the main process, and what the main process tells a worker.

A shard (`gridwatch.worker.shard`) runs in a worker process or, with `workers.count: 0`, in
the main process; either way it only ever talks through an `Output`. Every message is a
small frozen dataclass of its own kind, picklable and built once: an event carries its
evidence frame as a BGR array (`detach_event`), never the decoder's `av.VideoFrame`.

Two kinds of delivery, chosen by the sender from the message's type (`latest_slot`):
- reliable (`Hello`, `StateChanged`, `EventFound`, `ClipWritten`): small and rare, never
  dropped;
- latest-only (`Heartbeat`, `FrameAnalysed`, `Preview`): one slot per kind and camera, a
  newer message replaces one not yet sent, so a slow receiver costs a worker neither time
  nor memory.

The other way, over a worker's control pipe, go `ControlMessage`s: `Stop`, which
cameras' previews someone is looking at (`WantPreviews`), and a request for a camera's live
video with the pipe to stream it over (`StartLive`, `gridwatch.worker.live`).

A new kind of message is a dataclass added to `WorkerMessage` (or `ControlMessage`), to
`latest_slot` when a newer one may replace an unsent one, and to the receiver's dispatch
(`gridwatch.worker.cameras.CameraStatuses.apply` in the main process, `_serve` in
`gridwatch.worker.process` for control messages).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from gridwatch.detectors.events import Event
from gridwatch.ingest.frame import Frame
from gridwatch.ingest.state import AnalysedFrame, DecodeMode, StateChange, StreamHealth
from gridwatch.worker.clips import Clip


@dataclass(frozen=True, slots=True)
class Hello:
    """A worker is up and runs these cameras."""

    pid: int
    cameras: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CameraReport:
    """One camera's health as its shard sees it, sent in every `Heartbeat`."""

    stream: StreamHealth
    mode: DecodeMode
    preview_wanted: bool
    analysis_cost: dict[str, Any] | None

    @property
    def camera(self) -> str:
        return self.stream.camera_id


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker's vital signs and its cameras' health, every `heartbeat_s`."""

    pid: int
    cpu_s: float
    rss_bytes: int | None
    threads: int
    analysis_age_s: float
    sent_at: float
    messages_dropped: int
    cameras: tuple[CameraReport, ...]


@dataclass(frozen=True, slots=True)
class StateChanged:
    camera: str
    change: StateChange


@dataclass(frozen=True, slots=True)
class EventFound:
    """A rule event, its frame detached (`detach_event`)."""

    camera: str
    event: Event


@dataclass(frozen=True, slots=True)
class ClipWritten:
    """An evidence clip is on disk, keyed by its incident's dedup key."""

    camera: str
    clip: Clip


@dataclass(frozen=True, slots=True)
class FrameAnalysed:
    """One analysed frame, for the live view and the camera's health."""

    camera: str
    frame: AnalysedFrame


@dataclass(frozen=True, slots=True)
class Preview:
    """A small JPEG of a camera's newest frame; `width`/`height` are the source frame's."""

    camera: str
    jpeg: bytes
    wall: float
    width: int
    height: int


WorkerMessage = (Hello | Heartbeat | StateChanged | EventFound | ClipWritten | FrameAnalysed
                 | Preview)
"""Everything a shard sends to the main process."""


def latest_slot(message: WorkerMessage) -> tuple[type, str | None] | None:
    """The slot a latest-only message takes (a newer one replaces it while unsent); None for
    a message that must be delivered."""
    if isinstance(message, FrameAnalysed | Preview):
        return type(message), message.camera
    if isinstance(message, Heartbeat):
        return Heartbeat, None
    return None


class Output(Protocol):
    """Where a shard sends its messages; `send` never blocks on the receiver."""

    def send(self, message: WorkerMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class Stop:
    """Main process to worker: close the cameras' open events, send them, and exit."""


@dataclass(frozen=True, slots=True)
class WantPreviews:
    """Main process to worker: someone looks at these cameras' pictures, so encode them at
    the full preview rate for the given seconds (camera id to seconds, counted from receipt:
    the two processes share no deadline clock they could rely on)."""

    cameras: dict[str, float]


@dataclass(frozen=True, slots=True)
class StartLive:
    """Main process to worker: stream this camera's encoded packets over `conn` (a pipe of
    its own, passed with the message) until it closes or its keepalives stop."""

    camera: str
    conn: Connection


ControlMessage = Stop | WantPreviews | StartLive
"""Everything the main process tells a worker."""


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
