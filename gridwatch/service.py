"""The running service: one pipeline per camera, the incident queue and the HTTP API.

Each camera has an ingest thread (`ingest.camera.CameraRunner`, latest-frame mailbox) and an
analysis thread that takes the newest frame, runs the detection core and folds events into
incidents. The detector session is shared: onnxruntime releases the GIL while it runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url

from alerts.clips import ClipSettings
from alerts.delivery import OutboxDispatcher
from alerts.escalation import EscalationJob, Escalator
from alerts.evidence import EvidenceWriter
from alerts.grid import Grid
from alerts.incidents import IncidentManager
from alerts.sinks import build_sinks
from alerts.storage import IncidentStore, open_store
from detectors.backends.base import Detector
from detectors.backends.factory import create_detector
from detectors.pipeline import CameraAnalyzer
from gridwatch.api import create_app
from gridwatch.auth import Accounts
from gridwatch.auth.bootstrap import ensure_admin
from gridwatch.config import CameraConfig, Config
from gridwatch.live import LatestJpeg
from gridwatch.sources import analysis_url, camera_options
from ingest.camera import CameraRunner

log = logging.getLogger(__name__)


class CameraPipeline:
    """Ingest and analysis of one camera, started and stopped together."""

    def __init__(self, camera: CameraConfig, detector: Detector, manager: IncidentManager,
                 analysis_fps: float, conf: float, clips: ClipSettings | None = None) -> None:
        self.camera = camera
        self.manager = manager
        # Clips come from the stream the core analyses, so they show what it saw.
        packets = clips.buffer() if clips is not None and clips.enabled else None
        self.runner = CameraRunner(camera.id, analysis_url(camera), camera_options(camera),
                                   packet_buffer=packets)
        self.clips = None if clips is None or packets is None else clips.recorder(
            packets, manager.evidence, on_ready=lambda c: manager.attach_clip(c.key, c.path))
        self.analyzer = CameraAnalyzer(camera.id, camera.zones, detector,
                                       analysis_fps=analysis_fps, conf=conf)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._analyse, name=f"analyse-{camera.id}",
                                        daemon=True)
        self.last_result: dict[str, Any] | None = None
        self.preview = LatestJpeg()
        self._result_listeners: tuple[Callable[[dict[str, Any]], None], ...] = ()

    def on_result(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Hear every analysed frame's `last_result` (the live view's boxes); returns an
        unsubscribe. Called on the analysis thread: hand over, do not work there."""
        self._result_listeners = (*self._result_listeners, callback)

        def unsubscribe() -> None:
            self._result_listeners = tuple(c for c in self._result_listeners
                                           if c is not callback)

        return unsubscribe

    def start(self) -> None:
        self.runner.start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.runner.stop()
        self._thread.join(timeout=10)
        for event in self.analyzer.finish():
            self._handle(event)
        if self.clips is not None:
            self.clips.close()

    def _analyse(self) -> None:
        while not self._stopping.is_set():
            frame = self.runner.get(timeout=0.5)
            if frame is None:
                continue
            self.preview.offer(frame)
            try:
                result = self.analyzer.process(frame)
            except Exception:
                log.exception("camera %s: analysis failed on frame %d", self.camera.id,
                              frame.index)
                continue
            if result is None:
                continue
            self.runner.mark_analysed()
            self.last_result = {"t": frame.t, "wall": frame.wall, "zones": result.zones,
                                "width": frame.width, "height": frame.height,
                                "detections": [d.to_json() for d in result.detections]}
            for listener in self._result_listeners:
                try:
                    listener(self.last_result)
                except Exception:
                    log.exception("camera %s: result listener failed", self.camera.id)
            for event in result.events:
                self._handle(event)

    def _handle(self, event: Any) -> None:
        try:
            incident = self.manager.handle(event)
            if self.clips is not None and incident is not None:
                self.clips.follow(incident, event)
        except Exception:
            log.exception("camera %s: could not store %s event of %s/%s", self.camera.id,
                          event.phase, event.zone, event.kind)

    def health(self) -> dict[str, Any]:
        runner = self.runner.health()
        return {
            "id": self.camera.id,
            "name": self.camera.name or self.camera.id,
            "grid_cell": self.camera.grid_cell,
            "state": runner["state"],
            "reason": runner["reason"],
            "since": runner["since"],
            "stream": runner["uri"],
            "keyframes_only": runner["keyframes_only"],
            "counters": runner["counters"],
            "zones": [{"id": z.id, "name": z.name, "polygon": z.polygon,
                       "rules": [r.rule_id for r in z.rules]} for z in self.camera.zones],
            "last_analysis": self.last_result,
            "preview": self.preview.info(),
        }


class Service:
    """Everything one Gridwatch node runs; the API reads it through `camera_health`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        _ensure_sqlite_dir(config.storage.url)
        self.store: IncidentStore = open_store(config.storage.url)
        self.evidence = EvidenceWriter(config.storage.evidence_dir)
        cells = {c.id: c.grid_cell for c in config.cameras}
        self.grid = Grid.from_spec(config.grid, cells)
        auth = config.auth
        self.accounts = Accounts(self.store, self.grid, session_hours=auth.session_hours,
                                 login_max_failures=auth.login_max_failures,
                                 login_window_s=auth.login_window_s,
                                 cookie_secure=auth.cookie_secure)
        ensure_admin(self.accounts, auth.admin_username)
        self.escalation = EscalationJob(Escalator(self.store, self.grid, config.deadlines),
                                        config.deadlines.check_interval_s)
        self.manager = IncidentManager(self.store, self.evidence,
                                       cooldown_s=config.incident_cooldown_s,
                                       grid_cell_of=cells.get)
        # Without sinks the outbox keeps its messages: configuring a sink later delivers them.
        sinks = build_sinks(config.sinks)
        self.dispatcher = (OutboxDispatcher(self.store, sinks, config.delivery)
                           if sinks else None)
        model = config.model
        self.detector = create_detector(model.path or model.name, model.dir,
                                        backend=model.backend, threads=model.threads,
                                        conf=model.conf)
        self.pipelines = [
            CameraPipeline(cam, self.detector, self.manager, config.analysis.fps, model.conf,
                           config.clips)
            for cam in config.cameras if cam.enabled
        ]

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        self.escalation.start()
        for pipeline in self.pipelines:
            pipeline.start()
        log.info("watching %d camera(s)", len(self.pipelines))

    def stop(self) -> None:
        for pipeline in self.pipelines:
            pipeline.stop()
        self.escalation.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.store.close()

    def camera_health(self) -> list[dict[str, Any]]:
        return [p.health() for p in self.pipelines]

    def pipeline(self, camera_id: str) -> CameraPipeline | None:
        return next((p for p in self.pipelines if p.camera.id == camera_id), None)


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def serve(config: Config) -> int:
    """Run until interrupted; returns the process exit code."""
    service = Service(config)
    service.start()
    app = create_app(service)
    try:
        # Console event streams never end by themselves: give them a moment, then close.
        uvicorn.run(app, host=config.api.host, port=config.api.port, log_level="info",
                    timeout_graceful_shutdown=3)
    finally:
        service.stop()
    return 0
