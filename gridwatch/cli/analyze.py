"""`gridwatch analyze`: the service's pipeline on one input, as fast as the machine allows.

It writes the JSON-lines contract documented in docs/analyze-format.md: one `frame` line per
analysed frame, one `incident` line per incident (when it ends, or at the end of the input),
and a final `summary`. Incidents go through the same IncidentManager as the service, into a
throw-away store, so the deduplication seen here is the service's own.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import open_store
from gridwatch.alerts.store.views import Incident
from gridwatch.demo import SCHEME, camera_options, clips, is_demo, resolve_url
from gridwatch.detectors.backends.factory import detector_from_settings
from gridwatch.detectors.pipeline import FrameResult, analyzer_from_settings
from gridwatch.ingest.frame import Frame
from gridwatch.ingest.sources import open_source
from gridwatch.settings import GridwatchSettings
from gridwatch.settings.camera import CameraSettings
from gridwatch.settings.rules import PresenceRuleSettings
from gridwatch.settings.zones import ZoneSettings

#: Classes the ad-hoc whole-frame zone watches when no configured camera matches the input.
ADHOC_CLASSES = ["person", "boat", "truck", "car", "bus", "motorcycle", "bicycle"]


@dataclass(slots=True)
class AnalyzeSummary:
    frames_read: int
    frames_analysed: int
    incidents: int
    wall_s: float
    cpu_s: float

    def to_json(self) -> dict:
        return {
            "type": "summary",
            "frames_read": self.frames_read,
            "frames_analysed": self.frames_analysed,
            "incidents": self.incidents,
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "analysed_fps": round(self.frames_analysed / self.wall_s, 2) if self.wall_s else None,
        }


def adhoc_camera(camera_id: str, url: str) -> CameraSettings:
    """A whole-frame zone with a generic presence rule, for inputs no camera describes."""
    zone = ZoneSettings(
        id="frame",
        name="Whole frame",
        polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
        rules=[PresenceRuleSettings(kind="presence", classes=ADHOC_CLASSES, min_dwell_s=3.0)],
    )
    return CameraSettings(id=camera_id, url=url, zones=[zone])


def match_camera(config: GridwatchSettings, input_path: str) -> CameraSettings | None:
    """The configured camera whose stream is this input, so its zones and rules apply.

    A `demo:NAME` camera matches its clip by file name, so that analysing a copy of the clip
    needs neither the footage folder nor a download to find the camera's zones.
    """
    wanted = _canonical(input_path)
    for cam in config.cameras:
        for url in (cam.url, cam.analysis_url):
            if url and _same_stream(url, wanted):
                return cam
    return None


def _same_stream(url: str, wanted: str) -> bool:
    if is_demo(url):
        clip = clips().get(url.removeprefix(SCHEME))
        return clip is not None and Path(wanted).name == clip.file
    return _canonical(url) == wanted


def _canonical(url: str) -> str:
    path = Path(url)
    return str(path.resolve()) if "://" not in url and path.exists() else url


def frame_line(camera_id: str, result: FrameResult) -> dict:
    line = {
        "type": "frame",
        "camera": camera_id,
        "frame": result.frame.index,
        "t": round(result.frame.t, 3),
        "detections": [d.to_json() for d in result.detections],
        "zones": result.zones,
    }
    if result.look is not None:
        line["look"] = result.look.to_json()
    return line


def run_analysis(
    input_url: str,
    config: GridwatchSettings,
    out: IO[str],
    *,
    every_frame: bool = False,
    duration_s: float | None = None,
    camera_id: str | None = None,
    evidence_dir: Path | None = None,
) -> AnalyzeSummary:
    """Analyse one input with the configured (or an ad-hoc) camera and write JSON lines."""
    camera = match_camera(config, input_url)
    if camera is None:
        camera = adhoc_camera(camera_id or Path(input_url.rstrip("/")).stem or "input", input_url)
    elif camera_id:
        camera = camera.model_copy(update={"id": camera_id})
    analyzer = analyzer_from_settings(
        camera.id, camera.zones, config.model, detector_from_settings(config.model),
        analysis_fps=None if every_frame else config.analysis.fps,
    )
    options = camera_options(camera).model_copy(update={"realtime": False, "loop": False})

    incidents: dict[str, Incident] = {}
    emitted: set[str] = set()

    def write(obj: dict) -> None:
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def on_incident(incident: Incident) -> None:
        incidents[incident.id] = incident
        if incident.end is not None and incident.id not in emitted:
            emitted.add(incident.id)
            write(incident.to_json())

    with tempfile.TemporaryDirectory(prefix="gridwatch-analyze-") as tmp:
        store = open_store(f"sqlite:///{tmp}/incidents.db")
        manager = IncidentManager(
            store, EvidenceWriter(evidence_dir or Path(tmp) / "evidence"),
            cooldown_s=config.incident_cooldown_s, grid_cell_of=lambda _c: camera.grid_cell,
        )
        manager.subscribe(on_incident)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        frames_read = 0
        source = open_source(resolve_url(input_url), options, camera_id=camera.id)
        try:
            for frame in _limited(iter(source), duration_s):
                frames_read += 1
                result = analyzer.process(frame)
                if result is None:
                    continue
                write(frame_line(camera.id, result))
                for event in result.events:
                    manager.handle(event)
            for event in analyzer.finish():
                manager.handle(event)
            for incident in incidents.values():
                if incident.id not in emitted:
                    emitted.add(incident.id)
                    write(incident.to_json())
        finally:
            source.close()
            store.close()
        summary = AnalyzeSummary(
            frames_read, analyzer.frames_analysed, len(incidents),
            time.perf_counter() - wall0, time.process_time() - cpu0,
        )
    write(summary.to_json())
    out.flush()
    return summary


def _limited(frames: Iterator[Frame], duration_s: float | None) -> Iterator[Frame]:
    """Stop after `duration_s` of media time: the same cut for a live stream and a file."""
    first: float | None = None
    for frame in frames:
        first = frame.t if first is None else first
        if duration_s is not None and frame.t - first > duration_s:
            break
        yield frame
