"""This process's view of each camera, as its worker reports it; survives worker restarts.

A worker sends its cameras' state changes, analysed frames and previews as they happen and
their health in every heartbeat (`gridwatch.worker.messages`); `CameraStatuses` applies each
message to its camera's `CameraStatus`, and `CameraStatus.health` is the one place the
`CameraHealth` record the API, the console and the metrics show is made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gridwatch.common.redact import redact
from gridwatch.ingest.state import (
    CUMULATIVE_COUNTERS,
    AnalysedFrame,
    CameraHealth,
    CameraState,
    DecodeMode,
    PreviewInfo,
    StateChange,
    StateHistory,
    StreamCounters,
    WorkerRef,
    ZoneOutline,
)
from gridwatch.worker.messages import (
    CameraReport,
    FrameAnalysed,
    Heartbeat,
    Preview,
    StateChanged,
    WorkerMessage,
)
from gridwatch.worker.shard import CameraTask

log = logging.getLogger(__name__)

ResultListener = Callable[[dict[str, Any]], None]


class PreviewImage:
    """The newest preview JPEG of a camera, as its worker encoded it (about once a second
    while someone looks at it, every `workers.preview_idle_interval_s` otherwise)."""

    def __init__(self) -> None:
        self.seq = 0
        self.wall: float | None = None
        self.size: tuple[int, int] | None = None
        self.jpeg: bytes | None = None

    def store(self, preview: Preview) -> None:
        self.jpeg, self.wall = preview.jpeg, preview.wall
        self.size = (preview.width, preview.height)
        self.seq += 1

    def info(self, wanted: bool | None) -> PreviewInfo:
        width, height = self.size if self.size is not None else (None, None)
        return PreviewInfo(seq=self.seq, wall=self.wall, width=width, height=height,
                           wanted=wanted)


class CameraStatus:
    """One camera's state, counters, mode, last analysed frame and preview in this process."""

    def __init__(self, task: CameraTask, worker: int, history_size: int = 50) -> None:
        self.task = task
        self.camera = task.camera
        self.worker = worker
        self.preview = PreviewImage()
        self._analysed: AnalysedFrame | None = None
        self._result_listeners: tuple[ResultListener, ...] = ()
        self._lock = threading.Lock()
        self._states = StateHistory(CameraState.CONNECTING, "starting its worker", time.time(),
                                    history_size)
        self._report: CameraReport | None = None
        self._report_at: float | None = None
        self._pid: int | None = None
        self._incarnation = 0
        self._carried = dict.fromkeys(CUMULATIVE_COUNTERS, 0)

    def on_result(self, callback: ResultListener) -> Callable[[], None]:
        """Hear every analysed frame (`last_result`: the live view's boxes); returns an
        unsubscribe. Called on the thread that receives worker messages: hand over, do not
        work there."""
        self._result_listeners = (*self._result_listeners, callback)

        def unsubscribe() -> None:
            self._result_listeners = tuple(c for c in self._result_listeners
                                           if c is not callback)

        return unsubscribe

    # --- fed by the worker's messages ------------------------------------------------------

    def apply_state(self, change: StateChange) -> None:
        with self._lock:
            self._states.set(change.state, change.reason, change.since)

    def apply_report(self, incarnation: int, pid: int, report: CameraReport) -> None:
        """A heartbeat's health of this camera; a new incarnation of its worker starts its
        counters from zero, so the previous one's are carried over."""
        with self._lock:
            if incarnation != self._incarnation:
                if self._incarnation and self._report is not None:
                    previous = self._report.stream.counters
                    for key in CUMULATIVE_COUNTERS:
                        self._carried[key] += getattr(previous, key)
                    self._carried["reconnects"] += 1
                self._incarnation, self._report = incarnation, None
            self._pid = pid
            self._report, self._report_at = report, time.monotonic()
            stream = report.stream
            if stream.since >= self._states.since:
                self._states.set(stream.state, stream.reason, stream.since)

    def apply_result(self, analysed: FrameAnalysed) -> None:
        self._analysed = analysed.frame
        if not self._result_listeners:
            return
        result = analysed.frame.as_json()
        for listener in self._result_listeners:
            try:
                listener(result)
            except Exception:
                log.exception("camera %s: result listener failed", self.camera.id)

    def worker_down(self, reason: str) -> None:
        with self._lock:
            self._states.set(CameraState.OFFLINE, reason, time.time())
            self._pid = None

    # --- read by the API, the console and the metrics ----------------------------------------

    @property
    def state(self) -> CameraState:
        return self._states.state

    @property
    def last_result(self) -> dict[str, Any] | None:
        """The last analysed frame as the live view sends it (None before the first)."""
        analysed = self._analysed
        return None if analysed is None else analysed.as_json()

    def counters(self) -> StreamCounters:
        """Counters since the service started (across worker restarts); the last-frame age
        keeps growing while the worker is silent."""
        with self._lock:
            report, report_at, pid = self._report, self._report_at, self._pid
            carried = dict(self._carried)
        reported = report.stream.counters if report is not None else StreamCounters()
        age = reported.last_frame_age_s
        if age is not None and report_at is not None:
            age = round(age + time.monotonic() - report_at, 3)
        return StreamCounters(
            **{key: getattr(reported, key) + carried[key] for key in CUMULATIVE_COUNTERS},
            bitrate_bps=reported.bitrate_bps if pid else 0, last_frame_age_s=age)

    def mode(self) -> DecodeMode:
        report = self._report
        if report is not None:
            return report.mode
        return DecodeMode(configured=self.task.mode, current=None, quiet_s=self.task.quiet_s)

    def health(self) -> CameraHealth:
        report = self._report
        with self._lock:
            state, reason, since = self._states.state, self._states.reason, self._states.since
            changes = self._states.recent()
            pid = self._pid
        camera = self.camera
        return CameraHealth(
            id=camera.id, name=camera.name or camera.id, grid_cell=camera.grid_cell,
            state=state, reason=reason, since=since,
            stream=report.stream.uri if report is not None else redact(self.task.uri),
            keyframes_only=report.stream.keyframes_only if report is not None else None,
            mode=self.mode(), worker=WorkerRef(index=self.worker, pid=pid),
            counters=self.counters(),
            analysis_cost=report.analysis_cost if report is not None else None,
            zones=[ZoneOutline(id=z.id, name=z.name, polygon=z.polygon,
                               rules=[r.rule_id for r in z.rules]) for z in camera.zones],
            last_analysis=self._analysed,
            preview=self.preview.info(report.preview_wanted if report is not None else None),
            recent_changes=changes)


class CameraStatuses:
    """Every camera of this node, fed by its workers' messages."""

    def __init__(self, tasks: Sequence[CameraTask], worker_of: dict[str, int]) -> None:
        self._by_id = {t.camera.id: CameraStatus(t, worker_of[t.camera.id]) for t in tasks}

    def __iter__(self) -> Iterator[CameraStatus]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, camera_id: str) -> CameraStatus | None:
        return self._by_id.get(camera_id)

    def health(self) -> list[CameraHealth]:
        return [camera.health() for camera in self._by_id.values()]

    def apply(self, incarnation: int, message: WorkerMessage) -> None:
        """A worker's message about its cameras (others are not theirs to apply)."""
        if isinstance(message, Heartbeat):
            for report in message.cameras:
                camera = self._by_id.get(report.camera)
                if camera is not None:
                    camera.apply_report(incarnation, message.pid, report)
            return
        if not isinstance(message, StateChanged | FrameAnalysed | Preview):
            return
        camera = self._by_id.get(message.camera)
        if camera is None:
            return
        if isinstance(message, StateChanged):
            camera.apply_state(message.change)
        elif isinstance(message, FrameAnalysed):
            camera.apply_result(message)
        else:
            camera.preview.store(message)

    def worker_down(self, worker: int, reason: str) -> None:
        for camera in self._by_id.values():
            if camera.worker == worker:
                camera.worker_down(reason)
