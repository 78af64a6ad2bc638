"""One shared thread that notices cameras whose frames stopped while connected.

A camera's reader thread cannot notice this itself: it is blocked inside FFmpeg until the
read timeout fires, and on RTSP PyAV's timeout can hand out one more buffered packet before
it gives up (measured: the error comes at twice the read timeout). The watchdog flags the
stall on time and interrupts the source; the reader then reconnects as soon as it is free.
One thread for all cameras keeps a 200-camera process at 201 threads, not 400.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Watched(Protocol):
    def check_stall(self) -> None: ...


class StallWatchdog:
    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self._watched: set[Watched] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, item: Watched) -> None:
        with self._lock:
            self._watched.add(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ingest-watchdog",
                                                daemon=True)
                self._thread.start()

    def unwatch(self, item: Watched) -> None:
        with self._lock:
            self._watched.discard(item)

    def _run(self) -> None:
        # The thread lives as long as the process once started; idle cost is one wake-up
        # per interval, cheaper than the start/stop races of stopping it when empty.
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                items = list(self._watched)
            for item in items:
                try:
                    item.check_stall()
                except Exception:
                    log.exception("stall check failed")


WATCHDOG = StallWatchdog()
"""The process-wide watchdog used by every CameraRunner unless one is passed in."""
