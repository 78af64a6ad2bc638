"""What every source shares: the frame iterator contract, interruption, timing helpers."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Self

from gridwatch.common.redact import redact
from gridwatch.ingest.counters import CameraCounters
from gridwatch.ingest.frame import Frame
from gridwatch.settings.stream import StreamSettings


class Source(ABC):
    """An opened input that yields `Frame`s until it ends, fails or is interrupted.

    Iteration raises `gridwatch.ingest.errors.SourceError` on failure. `interrupt()` may be called
    from any thread: iteration then ends at its next step (a blocked network read still
    ends only at the read timeout, which is why one is always set).
    """

    live: bool = False
    """True for cameras: an end of stream is an outage, not the end of the input."""

    awaiting_keyframe: bool = False
    """A fresh decoder has put out nothing yet: it waits for a keyframe (after connecting,
    or a switch of decode mode), so packets, not frames, show that the stream is alive."""

    def __init__(self, uri: str, options: StreamSettings, camera_id: str,
                 counters: CameraCounters | None) -> None:
        self.display_uri = redact(uri)
        self.options = options
        self.camera_id = camera_id
        self.counters = counters if counters is not None else CameraCounters()
        self._interrupted = threading.Event()
        self._keyframes_only = options.keyframes_only

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Decoded frames in order, `t` non-decreasing from 0."""

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def interrupt(self) -> None:
        self._interrupted.set()

    def set_keyframes_only(self, enabled: bool) -> None:
        """Decode keyframes only (cheap watch mode), switched without reopening; safe to
        call from any thread, applied before the next packet. Stills are all keyframes."""
        self._keyframes_only = enabled

    def close(self) -> None:
        self.interrupt()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_uri!r}, camera_id={self.camera_id!r})"


class Pacer:
    """Holds frames back until their media time is due, so a file behaves like a camera."""

    def __init__(self, interrupted: threading.Event) -> None:
        self._interrupted = interrupted
        self._start: tuple[float, float] | None = None

    def wait(self, t: float) -> bool:
        """Sleep until `t` is due; False when interrupted meanwhile."""
        if self._start is None:
            self._start = (time.monotonic(), t)
        wall0, t0 = self._start
        delay = wall0 + (t - t0) - time.monotonic()
        return not (delay > 0 and self._interrupted.wait(delay))


class MediaClock:
    """Turns decoder timestamps into `t` seconds from 0 that always increase.

    Copes with frames without PTS (the first RTSP frames often have none), with streams
    that start at a large PTS, with loops (each pass continues after the last one), and
    with containers whose PTS run backwards (AVI with B-frames): such a frame is taken to
    be one frame interval after the previous one, as trackers divide by the time step.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last: float | None = None
        self._offset = 0.0
        self._origin: float | None = None
        self._unstamped = 0

    def restart(self) -> None:
        """A new pass over the input begins one frame interval after the last frame."""
        if self.last is not None:
            self._offset = self.last + self.interval
        self._origin = None
        self._unstamped = 0

    def t(self, raw: float | None) -> float:
        if raw is None:
            if self._origin is None:
                t = self._offset + self._unstamped * self.interval
                self._unstamped += 1
            else:
                t = (self.last or 0.0) + self.interval
        else:
            if self._origin is None:
                self._origin = raw - self._unstamped * self.interval
            t = self._offset + raw - self._origin
        if self.last is not None and t <= self.last:
            t = self.last + self.interval
        self.last = t
        return t
