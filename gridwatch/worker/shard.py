"""The cameras of one worker: a decoder thread per camera, ONE analysis thread for them all.

PyAV releases the GIL while it demuxes and decodes, so each camera's reader thread
(`gridwatch.ingest.camera.CameraRunner`) runs in parallel with the others; the analysis (motion,
detector, tracking, rules) is one thread with one detector, serving the cameras' latest-frame
mailboxes in the order frames arrived: each camera has at most one frame waiting, so a busy
camera cannot starve the others and a slow analysis drops old frames (counted) instead of
queueing them. Everything found leaves through an `Output` (`gridwatch.worker.messages`).

Each camera decodes in watch or active mode (`gridwatch.worker.adaptive`); the switch happens on the
reader's next packet, without reconnecting. Its camera-wall preview is encoded at the full
rate only while the main process says someone looks at it (`CameraShard.want_previews`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

import cv2
from av.video.reformatter import VideoReformatter
from cv2.typing import MatLike

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.detectors.backends.base import Detector
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.events import Event
from gridwatch.detectors.pipeline import AnalysisRate, CameraAnalyzer, FrameResult
from gridwatch.ingest.camera import CameraRunner
from gridwatch.ingest.frame import Frame
from gridwatch.ingest.state import AnalysedFrame, StateChange
from gridwatch.settings.analysis import AnalysisMode
from gridwatch.settings.camera import CameraSettings
from gridwatch.settings.clips import ClipSettings
from gridwatch.settings.model import ModelSettings
from gridwatch.settings.stream import StreamSettings
from gridwatch.worker.adaptive import ModeSwitch
from gridwatch.worker.clips import Clip, ClipRecorder, packet_buffer
from gridwatch.worker.live import LiveStreamer
from gridwatch.worker.messages import (
    CameraReport,
    ClipWritten,
    EventFound,
    FrameAnalysed,
    Output,
    Preview,
    StateChanged,
    detach_event,
)

log = logging.getLogger(__name__)

PREVIEW_WIDTH = 640
PREVIEW_QUALITY = 75


@dataclass(frozen=True, slots=True)
class CameraTask:
    """One camera as a shard runs it: the resolved stream to read and how to analyse it."""

    camera: CameraSettings
    uri: str
    options: StreamSettings
    mode: AnalysisMode
    fps: float
    quiet_s: float
    conf: float


class CameraAnalysis(Protocol):
    """What a shard needs from a camera's analysis
    (`gridwatch.detectors.pipeline.CameraAnalyzer`)."""

    @property
    def wants_active_mode(self) -> bool: ...

    def process(self, frame: Frame) -> FrameResult | None: ...

    def finish(self) -> list[Event]: ...


AnalysisFactory = Callable[[CameraTask, Callable[[], Detector]], CameraAnalysis]
"""Builds a camera's analysis; the second argument returns the shard's one detector."""


def camera_analyzer(task: CameraTask, detector: Callable[[], Detector]) -> CameraAnalysis:
    """The detection core for a camera (the service's analysis)."""
    return CameraAnalyzer(task.camera.id, task.camera.zones, detector(),
                          analysis_fps=task.fps, conf=task.conf)


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """Everything a shard needs, picklable: a worker process is started from it alone."""

    index: int
    tasks: tuple[CameraTask, ...]
    model: ModelSettings
    evidence_dir: Path
    clips: ClipSettings | None = None
    preview_interval_s: float = 1.0
    preview_idle_interval_s: float = 30.0
    heartbeat_s: float = 1.0
    log_level: int = logging.INFO
    analysis: AnalysisFactory = field(default=camera_analyzer)

    @property
    def camera_ids(self) -> list[str]:
        return [t.camera.id for t in self.tasks]


class ReadyCameras:
    """Cameras with a frame waiting, first come first served, each listed at most once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._order: deque[str] = deque()
        self._listed: set[str] = set()

    def mark(self, camera_id: str) -> None:
        with self._cond:
            if camera_id not in self._listed:
                self._listed.add(camera_id)
                self._order.append(camera_id)
                self._cond.notify()

    def next(self, timeout: float) -> str | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._order, timeout):
                return None
            camera_id = self._order.popleft()
            self._listed.discard(camera_id)
            return camera_id


class PreviewEncoder:
    """The camera wall's picture of one camera: a small JPEG at most every `interval_s`
    while someone looks at it (`want`), every `idle_interval_s` otherwise.

    Encoding is most of what watch mode costs over a bare keyframe decode (docs/ingest.md),
    and nobody needs a picture per keyframe of a wall nobody opened; the rare idle picture lets
    a wall that opens show something at once. Scaled by the decoder's own scaler straight
    from YUV (one reused context per camera), which costs a fraction of converting the full
    frame to BGR first.
    """

    def __init__(self, interval_s: float, idle_interval_s: float, *,
                 max_width: int = PREVIEW_WIDTH, quality: int = PREVIEW_QUALITY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.idle_interval_s = idle_interval_s
        self.max_width = max_width
        self.quality = quality
        self._clock = clock
        self._reformatter = VideoReformatter()
        self._at: float | None = None
        self._wanted_until = float("-inf")

    def want(self, for_s: float) -> None:
        """Someone looks at this camera's picture: the full rate for the next `for_s`
        seconds. Called by the thread that hears the main process; a later end never
        shortens an earlier one."""
        self._wanted_until = max(self._wanted_until, self._clock() + for_s)

    @property
    def wanted(self) -> bool:
        return self._clock() < self._wanted_until

    def due(self) -> bool:
        """Whether the next frame offered becomes a picture: the first frame always does, so
        a camera has a picture as soon as it streams."""
        if self._at is None:
            return True
        now = self._clock()
        interval = self.interval_s if now < self._wanted_until else self.idle_interval_s
        return now - self._at >= interval

    def offer(self, frame: Frame) -> Preview | None:
        if not self.due():
            return None
        width = min(self.max_width, frame.width)
        height = max(2, round(frame.height * width / frame.width / 2) * 2)
        image: MatLike
        if frame.video_frame is not None:
            image = self._reformatter.reformat(frame.video_frame, width=width, height=height,
                                               format="bgr24",
                                               interpolation="FAST_BILINEAR").to_ndarray()
        else:
            image = cv2.resize(frame.bgr(), (width, height), interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            log.warning("camera %s: preview of frame %d could not be encoded",
                        frame.camera_id, frame.index)
            return None
        self._at = self._clock()
        return Preview(frame.camera_id, encoded.tobytes(), frame.wall, frame.width,
                       frame.height)


class ShardCamera:
    """One camera of a shard: its reader, its analysis, its mode and its evidence clips."""

    def __init__(self, task: CameraTask, analysis: CameraAnalysis, out: Output,
                 ready: ReadyCameras, preview: PreviewEncoder,
                 clips: ClipSettings | None, evidence: EvidenceWriter) -> None:
        self.id = task.camera.id
        self.task = task
        self.analysis = analysis
        self.out = out
        self.modes = ModeSwitch(self.id, task.mode, task.quiet_s)
        packets = (packet_buffer(clips, self.id, evidence.dir)
                   if clips is not None and clips.enabled else None)
        options = task.options.model_copy(update={"keyframes_only": self.modes.keyframes_only})
        self._handover = AnalysisRate(task.fps)
        self.runner = CameraRunner(self.id, task.uri, options, on_state=self._on_state,
                                   on_frame=ready.mark, accept=self._due,
                                   packet_buffer=packets)
        # Clips come from the stream the core analyses, so they show what it saw; they are
        # keyed by the incident's dedup key, as only the main process knows incident ids.
        self.clips: ClipRecorder | None = None
        if clips is not None and packets is not None:
            self.clips = ClipRecorder(packets, evidence, clips, on_ready=self._on_clip)
        self.preview = preview
        self._open: set[tuple[str, str]] = set()
        self._live: set[LiveStreamer] = set()
        self._live_lock = threading.Lock()

    def start_live(self, conn: Connection) -> LiveStreamer:
        """Stream this camera's packets over `conn` from the reader's next keyframe on."""
        streamer = LiveStreamer(self.id, conn, on_end=self._live_ended)
        with self._live_lock:
            self._live.add(streamer)
        streamer.start()
        self.runner.packets.add(streamer)
        return streamer

    def _live_ended(self, streamer: LiveStreamer) -> None:
        self.runner.packets.remove(streamer)
        with self._live_lock:
            self._live.discard(streamer)

    @property
    def live_streams(self) -> list[LiveStreamer]:
        with self._live_lock:
            return list(self._live)

    def _due(self, frame: Frame) -> bool:
        """On the reader thread: only frames due for analysis (`fps` per second of media
        time; every keyframe in watch mode) are handed over, so a 25 fps camera analysed at
        5 fps wakes the analysis thread 5 times a second, not 25."""
        return self._handover.take(frame.t)

    def _on_state(self, camera_id: str, change: StateChange) -> None:
        self.out.send(StateChanged(camera_id, change))

    def _on_clip(self, clip: Clip) -> None:
        self.out.send(ClipWritten(self.id, clip))

    def analyse(self, frame: Frame) -> None:
        result = self.analysis.process(frame)
        if result is not None:
            self.runner.mark_analysed()
            for event in result.events:
                self.emit(event)
            busy = self.analysis.wants_active_mode or bool(self._open)
            if self.modes.observe(frame.t, busy):
                self.runner.set_keyframes_only(self.modes.keyframes_only)
            self.out.send(FrameAnalysed(self.id, AnalysedFrame(
                frame.t, frame.wall, result.zones, frame.width, frame.height, frame.keyframe,
                self.modes.current, [d.to_json() for d in result.detections])))
        preview = self.preview.offer(frame)
        if preview is not None:
            self.out.send(preview)

    def emit(self, event: Event) -> None:
        """Send an event on; an open event keeps the camera in active mode."""
        key = (event.zone, event.kind)
        if event.phase == "end":
            self._open.discard(key)
        else:
            self._open.add(key)
        if self.clips is not None:
            self.clips.follow_event(event)
        self.out.send(EventFound(self.id, detach_event(event)))

    def report(self) -> CameraReport:
        costs = getattr(self.analysis, "costs", None)
        return CameraReport(self.runner.status(), self.modes.report(), self.preview.wanted,
                            costs() if callable(costs) else None)

    def stop(self) -> None:
        self.runner.stop()
        for streamer in self.live_streams:
            streamer.stop("the camera stopped")
        for event in self.analysis.finish():
            self.emit(event)
        if self.clips is not None:
            self.clips.close()
        if self.runner.packet_buffer is not None:
            self.runner.packet_buffer.close()


class CameraShard:
    """Runs a shard's cameras until stopped; see the module docstring."""

    def __init__(self, spec: ShardSpec, out: Output) -> None:
        self.spec = spec
        self.out = out
        self._ready = ReadyCameras()
        self._detector: Detector | None = None
        self._detector_lock = threading.Lock()
        evidence = EvidenceWriter(spec.evidence_dir)
        self.cameras = {
            task.camera.id: ShardCamera(
                task, spec.analysis(task, self.detector), out, self._ready,
                PreviewEncoder(spec.preview_interval_s, spec.preview_idle_interval_s),
                spec.clips, evidence)
            for task in spec.tasks
        }
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._analyse, daemon=True,
                                        name=f"analysis-{spec.index}")
        self._tick = time.monotonic()

    def detector(self) -> Detector:
        """The shard's one detector, loaded when a camera first needs it; one thread uses
        it, as detectors reuse their input buffers."""
        with self._detector_lock:
            if self._detector is None:
                model = self.spec.model
                self._detector = create_detector(model.path or model.name, model.dir,
                                                 backend=model.backend, threads=model.threads,
                                                 conf=model.conf)
            return self._detector

    def start(self) -> None:
        self._tick = time.monotonic()
        self._thread.start()
        for camera in self.cameras.values():
            camera.runner.start()

    def stop(self) -> None:
        """Stop reading, let the analysis finish its frame, then close every open event."""
        self._stopping.set()
        for camera in self.cameras.values():
            camera.runner.stop(timeout=0)
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        for camera in self.cameras.values():
            try:
                camera.stop()
            except Exception:
                log.exception("camera %s: stopping failed", camera.id)

    @property
    def analysis_age_s(self) -> float:
        """Seconds since the analysis thread last came round (it does at least every
        0.5 s when idle): a stuck analysis shows here while the process still answers."""
        return time.monotonic() - self._tick

    def reports(self) -> tuple[CameraReport, ...]:
        return tuple(camera.report() for camera in self.cameras.values())

    def want_previews(self, wanted: Mapping[str, float]) -> None:
        """Someone looks at these cameras' pictures (camera id to seconds): encode them at
        the full rate meanwhile. Cameras of other shards are ignored."""
        for camera_id, for_s in wanted.items():
            camera = self.cameras.get(camera_id)
            if camera is not None:
                camera.preview.want(for_s)

    def start_live(self, camera_id: str, conn: Connection) -> LiveStreamer | None:
        """Stream a camera's live video over `conn`; a camera of another shard gets its
        pipe closed at once, which its viewer reads as the end of the stream."""
        camera = self.cameras.get(camera_id)
        if camera is None:
            log.warning("live video of %s asked of shard %d, which does not run it",
                        camera_id, self.spec.index)
            conn.close()
            return None
        return camera.start_live(conn)

    def _analyse(self) -> None:
        while not self._stopping.is_set():
            self._tick = time.monotonic()
            camera_id = self._ready.next(timeout=0.5)
            if camera_id is None:
                continue
            camera = self.cameras[camera_id]
            frame = camera.runner.get(timeout=0)
            if frame is None:
                continue
            try:
                camera.analyse(frame)
            except Exception:
                log.exception("camera %s: analysis failed on frame %d", camera_id, frame.index)
