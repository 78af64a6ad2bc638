"""Adaptive decode: watch a camera on its keyframes, look closely only while something happens.

Decoding is what decides how many cameras a machine watches. Keyframes only (*watch*) cost
about one keyframe per GOP; every frame (*active*) costs 6-8x more. The events this service
exists for last minutes, so one look per keyframe is enough until a zone shows activity (the
detection core's `wants_active_mode`: recent motion in a zone or an object it still knows) or
an event is open; the camera then decodes every frame and is analysed at its configured rate,
and goes back to watching after `quiet_s` without either.
"""

from __future__ import annotations

import logging
import time

from gridwatch.ingest.state import DecodeMode
from gridwatch.settings.analysis import AnalysisMode

log = logging.getLogger(__name__)


class ModeSwitch:
    """The decode mode of one camera, decided from what its analysed frames show.

    Time is the frames' media time, so a file analysed faster than real time switches like
    the live camera would; a fixed mode (`watch` or `active`) never switches.
    """

    def __init__(self, camera_id: str, mode: AnalysisMode, quiet_s: float) -> None:
        if quiet_s <= 0:
            raise ValueError(f"camera {camera_id}: quiet_s must be > 0, got {quiet_s}")
        self.camera_id = camera_id
        self.mode = mode
        self.quiet_s = quiet_s
        self.active = mode == "active"
        self.since = time.time()
        self.switches = 0
        self._last_busy_t: float | None = None

    @property
    def keyframes_only(self) -> bool:
        return not self.active

    @property
    def current(self) -> str:
        return "active" if self.active else "watch"

    def observe(self, t: float, busy: bool) -> bool:
        """Fold in one analysed frame at media time `t`; True when the mode changed."""
        if self.mode != "adaptive":
            return False
        if busy:
            self._last_busy_t = t
        if not self.active and busy:
            return self._switch(True, "activity in a zone or an open event")
        if self.active and not busy and self._last_busy_t is not None:
            quiet = t - self._last_busy_t
            if quiet >= self.quiet_s:
                return self._switch(False, f"quiet for {quiet:.1f} s")
        return False

    def _switch(self, active: bool, why: str) -> bool:
        self.active = active
        self.since = time.time()
        self.switches += 1
        log.info("camera %s: %s mode (%s)", self.camera_id, self.current, why)
        return True

    def report(self) -> DecodeMode:
        return DecodeMode(configured=self.mode, current=self.current, since=self.since,
                          switches=self.switches, quiet_s=self.quiet_s)
