"""The running service: camera workers, the incident queue, delivery and the HTTP API.

Cameras run in worker processes (`gridwatch.worker.supervisor`, `gridwatch.worker.process`): each
owns a
share of the cameras, decodes them (keyframes only while nothing happens:
`gridwatch.worker.adaptive`) and analyses them. This process keeps the incident store, the
IncidentManager, escalation, delivery and the API; it hears the workers' events, camera
states, heartbeats, previews and per-frame results (`gridwatch.worker.messages`) and keeps, per
camera, a `CameraPipeline`: what the API, the console and the metrics read. With
`workers.count: 0` the same shard runs in this process instead (small nodes, debugging).
A request for a camera's picture tells its worker to encode previews at the full rate for a
while (`PreviewDemand`); otherwise the workers encode one rarely.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url

from gridwatch.accounts import audit
from gridwatch.accounts.bootstrap import ensure_admin
from gridwatch.accounts.store import Accounts
from gridwatch.alerts.delivery.dispatcher import OutboxDispatcher
from gridwatch.alerts.delivery.sinks import build_sinks
from gridwatch.alerts.incidents.escalation import EscalationJob, Escalator
from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.grid import Grid
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import IncidentStore, open_store
from gridwatch.common.redact import redact
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.events import Event
from gridwatch.models.weights import resolve_weights
from gridwatch.settings import Config, ModelConfig
from gridwatch.web.api import create_app
from gridwatch.web.metrics import ServiceMetrics
from gridwatch.worker.clips import Clip
from gridwatch.worker.messages import Kind, Message, Preview
from gridwatch.worker.process import camera_tasks, plan_shards, shard_cameras, worker_count
from gridwatch.worker.shard import CameraTask
from gridwatch.worker.supervisor import InProcessWorkers, Supervisor, WorkerStatus

log = logging.getLogger(__name__)

CUMULATIVE = ("frames_received", "frames_decoded", "frames_dropped", "decode_errors",
              "reconnects", "analysed", "bytes_received")
"""Counters that keep counting across worker restarts (a new worker starts from zero)."""


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

    def info(self) -> dict[str, Any]:
        return {"seq": self.seq, "wall": self.wall,
                "width": None if self.size is None else self.size[0],
                "height": None if self.size is None else self.size[1]}


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


class CameraPipeline:
    """This process's view of one camera: its state, counters, mode, last analysed frame and
    preview, as its worker reports them; survives the worker's restarts."""

    def __init__(self, task: CameraTask, worker: int, history_size: int = 50) -> None:
        self.task = task
        self.camera = task.camera
        self.worker = worker
        self.preview = PreviewImage()
        self.last_result: dict[str, Any] | None = None
        self._result_listeners: tuple[Callable[[dict[str, Any]], None], ...] = ()
        self._lock = threading.Lock()
        self._state, self._reason, self._since = "connecting", "starting its worker", time.time()
        self._history: deque[dict[str, Any]] = deque(maxlen=history_size)
        self._report: dict[str, Any] = {}
        self._report_at: float | None = None
        self._pid: int | None = None
        self._incarnation = 0
        self._carried = dict.fromkeys(CUMULATIVE, 0)

    def on_result(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Hear every analysed frame's `last_result` (the live view's boxes); returns an
        unsubscribe. Called on the thread that receives worker messages: hand over, do not
        work there."""
        self._result_listeners = (*self._result_listeners, callback)

        def unsubscribe() -> None:
            self._result_listeners = tuple(c for c in self._result_listeners
                                           if c is not callback)

        return unsubscribe

    # --- fed by the worker's messages ------------------------------------------------------

    def apply(self, kind: Kind, body: Any) -> None:
        """A per-camera message of the worker that runs this camera (state, result, preview)."""
        if kind is Kind.STATE:
            self.apply_state(body)
        elif kind is Kind.RESULT:
            self.apply_result(body)
        elif kind is Kind.PREVIEW:
            self.preview.store(body)

    def apply_state(self, change: dict[str, Any]) -> None:
        with self._lock:
            self._set_state(change["state"], change["reason"], change["since"])

    def apply_report(self, incarnation: int, pid: int, report: dict[str, Any]) -> None:
        """A heartbeat's health of this camera (`CameraRunner.health()` and its mode)."""
        with self._lock:
            if incarnation != self._incarnation:
                if self._incarnation:
                    previous = self._report.get("counters") or {}
                    for key in CUMULATIVE:
                        self._carried[key] += previous.get(key) or 0
                    self._carried["reconnects"] += 1
                self._incarnation, self._report = incarnation, {}
            self._pid = pid
            self._report, self._report_at = report, time.monotonic()
            if report["since"] >= self._since:
                self._set_state(report["state"], report["reason"], report["since"])

    def apply_result(self, result: dict[str, Any]) -> None:
        self.last_result = result
        for listener in self._result_listeners:
            try:
                listener(result)
            except Exception:
                log.exception("camera %s: result listener failed", self.camera.id)

    def worker_down(self, reason: str) -> None:
        with self._lock:
            self._set_state("offline", reason, time.time())
            self._pid = None

    def _set_state(self, state: str, reason: str, since: float) -> None:
        if (state, reason) == (self._state, self._reason):
            return
        previous = self._state
        if state != previous:
            self._since = since
        self._state, self._reason = state, reason
        self._history.append({"state": state, "reason": reason, "since": since,
                              "previous": previous})

    # --- read by the API, the console and the metrics ----------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def counters(self) -> dict[str, Any]:
        """Counters since the service started (across worker restarts); the last-frame age
        keeps growing while the worker is silent."""
        with self._lock:
            reported = dict(self._report.get("counters") or {})
            report_at = self._report_at
            carried = dict(self._carried)
        counters: dict[str, Any] = {key: (reported.get(key) or 0) + carried[key]
                                    for key in CUMULATIVE}
        counters["bitrate_bps"] = reported.get("bitrate_bps", 0) if self._pid else 0
        age = reported.get("last_frame_age_s")
        if age is not None and report_at is not None:
            age = round(age + time.monotonic() - report_at, 3)
        counters["last_frame_age_s"] = age
        return counters

    def mode(self) -> dict[str, Any]:
        return dict(self._report.get("mode") or {"configured": self.task.mode,
                                                 "current": None})

    def health(self) -> dict[str, Any]:
        report = self._report
        with self._lock:
            state, reason, since = self._state, self._reason, self._since
            changes = list(self._history)[-10:]
        return {
            "id": self.camera.id,
            "name": self.camera.name or self.camera.id,
            "grid_cell": self.camera.grid_cell,
            "state": state,
            "reason": reason,
            "since": since,
            "stream": report.get("uri") or redact(self.task.uri),
            "keyframes_only": report.get("keyframes_only"),
            "mode": self.mode(),
            "worker": {"index": self.worker, "pid": self._pid},
            "counters": self.counters(),
            "analysis_cost": report.get("analysis_cost"),
            "zones": [{"id": z.id, "name": z.name, "polygon": z.polygon,
                       "rules": [r.rule_id for r in z.rules]} for z in self.camera.zones],
            "last_analysis": self.last_result,
            "preview": {**self.preview.info(), "wanted": report.get("preview_wanted")},
            "recent_changes": changes,
        }


class IncidentWriter:
    """Folds the workers' events (and finished clips) into incidents on one thread, in the
    order they arrived, so that the thread receiving messages never waits on the database."""

    def __init__(self, manager: IncidentManager) -> None:
        self.manager = manager
        self._queue: queue.Queue[Event | Clip | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="incidents", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: Event | Clip) -> None:
        self._queue.put(item)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop."""
        if self._thread.ident is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if isinstance(item, Clip):
                    self.manager.attach_clip_for(item.key, item.event_wall, item.path)
                else:
                    self.manager.handle(item)
            except Exception:
                log.exception("could not store %r", _describe(item))


def _describe(item: Event | Clip) -> str:
    if isinstance(item, Clip):
        return f"clip {item.path} of {item.key}"
    return f"{item.phase} event of {item.camera}/{item.zone}/{item.kind}"


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
        self.escalation = EscalationJob(Escalator(self.store, self.grid, config.deadlines,
                                                  record_action=audit.record),
                                        config.deadlines.check_interval_s)
        self.manager = IncidentManager(self.store, self.evidence,
                                       cooldown_s=config.incident_cooldown_s,
                                       grid_cell_of=cells.get)
        # Without sinks the outbox keeps its messages: configuring a sink later delivers them.
        sinks = build_sinks(config.sinks)
        self.dispatcher = (OutboxDispatcher(self.store, sinks, config.delivery)
                           if sinks else None)
        self.incidents = IncidentWriter(self.manager)
        tasks = camera_tasks(config)
        workers = worker_count(config.workers.count, len(tasks))
        self.shards = plan_shards(config, _checked_model(config.model) if tasks else
                                  config.model, workers)
        where = shard_cameras(self.shards)
        self.pipelines = [CameraPipeline(task, where[task.camera.id]) for task in tasks]
        self._by_id = {p.camera.id: p for p in self.pipelines}
        self.worker_heartbeats: dict[int, dict[str, Any]] = {}
        """The last heartbeat of each worker (its cameras' health aside)."""
        self.workers: Supervisor | InProcessWorkers | None = None
        if self.shards and workers == 0:
            self.workers = InProcessWorkers(self.shards[0], self._on_message)
        elif self.shards:
            settings = config.workers
            self.workers = Supervisor(
                self.shards, self._on_message, self._on_worker_down,
                heartbeat_timeout_s=settings.heartbeat_timeout_s,
                restart_backoff_initial_s=settings.restart_backoff_initial_s,
                restart_backoff_max_s=settings.restart_backoff_max_s)
        self.preview_demand = PreviewDemand(config.workers.preview_demand_s,
                                            self._tell_previews)
        self.metrics = ServiceMetrics(self, token=config.api.metrics_token)

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        self.escalation.start()
        self.incidents.start()
        if self.workers is not None:
            self.workers.start()
        log.info("watching %d camera(s) in %s", len(self.pipelines),
                 f"{len(self.shards)} worker process(es)"
                 if isinstance(self.workers, Supervisor) else "this process")

    def stop(self) -> None:
        if self.workers is not None:
            self.workers.stop()
        self.incidents.stop()
        self.escalation.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.store.close()

    def camera_health(self) -> list[dict[str, Any]]:
        return [p.health() for p in self.pipelines]

    def pipeline(self, camera_id: str) -> CameraPipeline | None:
        return self._by_id.get(camera_id)

    def worker_statuses(self) -> list[WorkerStatus]:
        return self.workers.statuses() if self.workers is not None else []

    def want_preview(self, camera_id: str) -> None:
        """Someone is looking at the camera's picture: keep it coming at the full rate."""
        self.preview_demand.want(camera_id)

    def _tell_previews(self, wanted: dict[str, float]) -> None:
        if self.workers is not None:
            self.workers.want_previews(wanted)

    def _on_message(self, worker: int, incarnation: int, message: Message) -> None:
        kind, body = message.kind, message.body
        if kind is Kind.HEALTH:
            self.worker_heartbeats[worker] = {k: v for k, v in body.items() if k != "cameras"}
            for report in body["cameras"]:
                pipeline = self._by_id.get(report["camera_id"])
                if pipeline is not None:
                    pipeline.apply_report(incarnation, body["pid"], report)
            return
        if kind in (Kind.EVENT, Kind.CLIP):
            self.incidents.put(body)
            return
        pipeline = self._by_id.get(message.camera or "")
        if pipeline is not None:
            pipeline.apply(kind, body)

    def _on_worker_down(self, worker: int, reason: str) -> None:
        for pipeline in self.pipelines:
            if pipeline.worker == worker:
                pipeline.worker_down(reason)


def _checked_model(model: ModelConfig) -> ModelConfig:
    """Resolve and load the model once here, so that a missing or unusable model fails the
    start with a clear message instead of a worker crash loop; workers then load the
    verified file (never fetching it again)."""
    weights = resolve_weights(model.path or model.name, model.dir)
    create_detector(weights, backend=model.backend, threads=model.threads, conf=model.conf)
    return model.model_copy(update={"path": weights})


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
