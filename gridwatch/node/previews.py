"""When the camera workers hear that someone looks at a camera's picture."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class PreviewDemand:
    """Which cameras' pictures someone looks at, and when their workers must hear of it.

    Every request for a picture calls `want`, but the worker is told (`demand_s` more
    seconds of full-rate previews) only when the camera was not wanted or the demand it knows
    of ends within `demand_s / 2`: a wall refreshing every second costs one control message
    per camera every `demand_s / 2`, and demand nobody renews lapses in the worker by itself.
    """

    def __init__(self, demand_s: float, tell: Callable[[dict[str, float]], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.demand_s = demand_s
        self._tell = tell
        self._clock = clock
        self._lock = threading.Lock()
        self._told_until: dict[str, float] = {}

    def want(self, camera_id: str) -> None:
        """Someone is looking at the camera's picture now (called by request threads)."""
        now = self._clock()
        with self._lock:
            if self._told_until.get(camera_id, now) - now > self.demand_s / 2:
                return
            self._told_until[camera_id] = now + self.demand_s
        self._tell({camera_id: self.demand_s})
