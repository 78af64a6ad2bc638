"""Per-camera counters, cheap enough to bump on every packet."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateMeter:
    """Bits per second over the last few seconds, from a running byte total.

    Samples are taken at most every `step_s`: `due` says when the next one is wanted, so
    the caller's cost per packet is one comparison.
    """

    def __init__(self, window_s: float = 5.0, step_s: float = 0.5) -> None:
        self._step = step_s
        self.due = float("-inf")
        self._samples: deque[tuple[float, int]] = deque(maxlen=max(2, int(window_s / step_s)))

    def sample(self, total_bytes: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now >= self.due:
            self._samples.append((now, total_bytes))
            self.due = now + self._step

    def bits_per_second(self, total_bytes: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if not self._samples:
            return 0.0
        t0, b0 = self._samples[0]
        span = now - t0
        return (total_bytes - b0) * 8 / span if span > 0 else 0.0


class CameraCounters:
    """Counts written by the camera's reader thread (and `analysed` by its consumer).

    Single writers per field, so plain integer updates are enough under the GIL; only the
    snapshot takes the lock to return a consistent picture.
    """

    def __init__(self) -> None:
        self.packets_received = 0
        self.bytes_received = 0
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.decode_errors = 0
        self.reconnects = 0
        self.analysed = 0
        self.last_frame_monotonic: float | None = None
        self.last_packet_monotonic: float | None = None
        self._rate = RateMeter()
        self._lock = threading.Lock()

    def packet(self, size: int) -> None:
        now = time.monotonic()
        self.packets_received += 1
        self.bytes_received += size
        self.last_packet_monotonic = now
        if now >= self._rate.due:
            self._rate.sample(self.bytes_received, now)

    def frame(self) -> None:
        self.frames_decoded += 1
        self.last_frame_monotonic = time.monotonic()

    def mark_analysed(self, count: int = 1) -> None:
        with self._lock:
            self.analysed += count

    def last_frame_age(self, now: float | None = None) -> float | None:
        if self.last_frame_monotonic is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_frame_monotonic

    def snapshot(self) -> dict[str, float | int | None]:
        now = time.monotonic()
        with self._lock:
            age = self.last_frame_age(now)
            return {
                "frames_received": self.packets_received,
                "frames_decoded": self.frames_decoded,
                "frames_dropped": self.frames_dropped,
                "decode_errors": self.decode_errors,
                "reconnects": self.reconnects,
                "analysed": self.analysed,
                "bytes_received": self.bytes_received,
                "bitrate_bps": round(self._rate.bits_per_second(self.bytes_received, now)),
                "last_frame_age_s": None if age is None else round(age, 3),
            }
