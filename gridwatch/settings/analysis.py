"""The `analysis:` section and a camera's departures from it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gridwatch.settings.base import StrictSettings

AnalysisMode = Literal["adaptive", "watch", "active"]


class AnalysisSettings(StrictSettings):
    """How cameras are analysed: *watch* decodes keyframes only and runs the cheap stages on
    them, *active* decodes every frame and analyses `fps` of them, *adaptive* switches to
    active when a zone shows activity or an event is open and back after `quiet_s`."""

    fps: float = Field(default=5.0, gt=0, le=60,
                       description="Analysed frames per second in active mode")
    mode: AnalysisMode = "adaptive"
    quiet_s: float = Field(default=10.0, gt=0, le=3600,
                           description="Adaptive: back to watch after this long without "
                                       "activity or an open event")


class CameraAnalysisSettings(StrictSettings):
    """One camera's departures from the `analysis` defaults."""

    mode: AnalysisMode | None = None
    fps: float | None = Field(default=None, gt=0, le=60)
    quiet_s: float | None = Field(default=None, gt=0, le=3600)
