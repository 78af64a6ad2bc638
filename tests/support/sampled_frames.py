"""Decoded frames of a real clip, sampled at a media-time step like the service samples them.

Frames come from `gridwatch.ingest.sources.open_source`, so they carry the decoder's luma plane
(what
the motion stage reads in production) and a lazy BGR conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gridwatch.ingest.frame import Frame
from gridwatch.ingest.sources import open_source
from gridwatch.settings.stream import StreamSettings


def sampled_frames(path: Path, step_s: float = 0.0, start: float = 0.0,
                   stop: float = float("inf")) -> Iterator[Frame]:
    """Frames with `start <= t < stop`, at least `step_s` of media time apart."""
    source = open_source(str(path), StreamSettings(realtime=False, loop=False), camera_id="test")
    last: float | None = None
    try:
        for frame in source:
            if frame.t >= stop:
                return
            if frame.t < start or (last is not None and frame.t - last < step_s - 1e-6):
                continue
            last = frame.t
            yield frame
    finally:
        source.close()
