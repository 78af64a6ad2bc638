"""A one-slot mailbox between a camera's reader thread and its consumer.

Surveillance wants the newest picture, not every picture: when analysis falls behind, the
old frame is replaced (and counted as dropped) instead of queueing, so latency and memory
stay bounded whatever the consumer does.
"""

from __future__ import annotations

import threading

from gridwatch.ingest.frame import Frame


class LatestFrame:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame) -> bool:
        """Store `frame`; True when it replaced one nobody took (a dropped frame)."""
        with self._cond:
            replaced = self._frame is not None
            if replaced:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()
        return replaced

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet taken; None on timeout or once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None or self._closed,
                                       timeout):
                return None
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        """Wake waiting consumers: no more frames will come."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
