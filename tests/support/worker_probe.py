"""A camera analysis that, inside a worker process, writes down which modules are loaded.

It wraps the service's own analysis (`gridwatch.worker.shard.camera_analyzer`) and is handed
to the worker in its `ShardSpec`, so the worker imports this module: it imports nothing but
the worker side itself, or it would pollute what it inspects.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.events import Event
from gridwatch.detectors.pipeline import FrameResult
from gridwatch.ingest.frame import Frame
from gridwatch.worker.shard import CameraAnalysis, CameraTask, camera_analyzer


@dataclass(frozen=True)
class ModuleProbe:
    """An `AnalysisFactory`: the real analysis, plus `sys.modules` written to `report` as
    JSON once its first frame has been analysed (the detector loaded and run by then)."""

    report: Path

    def __call__(self, task: CameraTask, detector: Callable[[], Detector]) -> CameraAnalysis:
        return _Probed(camera_analyzer(task, detector), self.report)


class _Probed:
    def __init__(self, analysis: CameraAnalysis, report: Path) -> None:
        self._analysis = analysis
        self._report = report

    @property
    def wants_active_mode(self) -> bool:
        return self._analysis.wants_active_mode

    def process(self, frame: Frame) -> FrameResult | None:
        result = self._analysis.process(frame)
        if result is not None and not self._report.exists():
            partial = self._report.with_suffix(".partial")
            partial.write_text(json.dumps(sorted(sys.modules)))
            partial.rename(self._report)
        return result

    def finish(self) -> list[Event]:
        return self._analysis.finish()
