"""The composition root: one Gridwatch node's parts, wired together, and `serve`.

Cameras run in worker processes (`gridwatch.worker.supervisor`, `gridwatch.worker.process`):
each owns a share of the cameras, decodes them (keyframes only while nothing happens:
`gridwatch.worker.adaptive`) and analyses them. This process keeps the incident store, the
IncidentManager, escalation, delivery and the API; it hears the workers' messages
(`gridwatch.worker.messages`), hands events and clips to the `IncidentWriter` and everything
else to the cameras' `CameraStatuses` (`gridwatch.node`), which the web side reads through
`gridwatch.web.views`. With `workers.count: 0` the same shard runs in this process instead
(small nodes, debugging). A request for a camera's picture tells its worker to encode
previews at the full rate for a while (`PreviewDemand`); otherwise the workers encode one
rarely.

Building a `Service` does no I/O: `open` opens (and migrates) the store, makes sure there is an
administrator, builds the sinks, checks the model and plans the workers; `start` opens if
needed and starts the threads and the workers; `stop` ends them and closes the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import uvicorn

from gridwatch.accounts import audit
from gridwatch.accounts.bootstrap import ensure_admin
from gridwatch.accounts.store import Accounts
from gridwatch.alerts.delivery.dispatcher import OutboxDispatcher
from gridwatch.alerts.delivery.sinks import build_sinks
from gridwatch.alerts.incidents.escalation import EscalationJob, Escalator
from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.grid import Grid
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import IncidentStore, ensure_sqlite_dir, open_store
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.ingest.state import CameraHealth
from gridwatch.models.weights import resolve_weights
from gridwatch.node.cameras import CameraStatus, CameraStatuses
from gridwatch.node.incidents import IncidentWriter
from gridwatch.node.previews import PreviewDemand
from gridwatch.settings import GridwatchSettings
from gridwatch.settings.model import ModelSettings
from gridwatch.web.api import create_app
from gridwatch.web.metrics import ServiceMetrics
from gridwatch.worker.live import LiveLink
from gridwatch.worker.messages import ClipWritten, EventFound, WorkerMessage
from gridwatch.worker.process import camera_tasks, plan_shards, shard_cameras, worker_count
from gridwatch.worker.shard import ShardSpec
from gridwatch.worker.supervisor import InProcessWorkers, Supervisor, WorkerStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Opened:
    """The parts that exist once the service is open."""

    store: IncidentStore
    accounts: Accounts
    manager: IncidentManager
    escalation: EscalationJob
    dispatcher: OutboxDispatcher | None
    incidents: IncidentWriter
    shards: list[ShardSpec]
    cameras: CameraStatuses
    workers: Supervisor | InProcessWorkers | None


class NotOpen(RuntimeError):
    """The service was asked for a part that exists only once it is open."""


class Service:
    """Everything one Gridwatch node runs; the web side reads it as a `ServiceView`."""

    def __init__(self, config: GridwatchSettings) -> None:
        self.config = config
        self.evidence = EvidenceWriter(config.storage.evidence_dir)
        self.grid = Grid.from_settings(config.grid, {c.id: c.grid_cell for c in config.cameras})
        self.preview_demand = PreviewDemand(config.workers.preview_demand_s,
                                            self._tell_previews)
        self.metrics = ServiceMetrics(self, token=config.api.metrics_token)
        self._opened: _Opened | None = None
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------------

    def open(self) -> Service:
        """Open the store (migrating it), make sure an administrator exists, build the sinks,
        check the model and plan the camera workers; a second call does nothing."""
        if self._opened is None:
            self._opened = self._open()
        return self

    def start(self) -> None:
        parts = self.open()._parts()
        if parts.dispatcher is not None:
            parts.dispatcher.start()
        parts.escalation.start()
        parts.incidents.start()
        if parts.workers is not None:
            parts.workers.start()
        self._started = True
        log.info("watching %d camera(s) in %s", len(parts.cameras),
                 f"{len(parts.shards)} worker process(es)"
                 if isinstance(parts.workers, Supervisor) else "this process")

    def stop(self) -> None:
        """Stop what was started and close the store (also for a service only opened)."""
        parts = self._opened
        if parts is None:
            return
        if self._started:
            if parts.workers is not None:
                parts.workers.stop()
            parts.incidents.stop()
            parts.escalation.stop()
            if parts.dispatcher is not None:
                parts.dispatcher.stop()
            self._started = False
        parts.store.close()

    # --- what the web side reads ------------------------------------------------------------

    @property
    def store(self) -> IncidentStore:
        return self._parts().store

    @property
    def accounts(self) -> Accounts:
        return self._parts().accounts

    @property
    def manager(self) -> IncidentManager:
        return self._parts().manager

    def camera_health(self) -> list[CameraHealth]:
        return self._parts().cameras.health()

    def camera(self, camera_id: str) -> CameraStatus | None:
        return self._parts().cameras.get(camera_id)

    def worker_statuses(self) -> list[WorkerStatus]:
        workers = self._parts().workers
        return workers.statuses() if workers is not None else []

    def open_live(self, camera_id: str) -> LiveLink:
        """The camera's live video, streamed by the worker that holds the camera; raises
        ConnectionError naming the camera when that worker is down."""
        workers = self._parts().workers
        if workers is None:
            raise ConnectionError(f"camera {camera_id}: no worker runs it")
        return workers.open_live(camera_id)

    def want_preview(self, camera_id: str) -> None:
        """Someone is looking at the camera's picture: keep it coming at the full rate."""
        self.preview_demand.want(camera_id)

    # --- wiring ------------------------------------------------------------------------------

    def _parts(self) -> _Opened:
        if self._opened is None:
            raise NotOpen("the service is not open yet: call open() or start() first")
        return self._opened

    def _open(self) -> _Opened:
        config = self.config
        ensure_sqlite_dir(config.storage.url)
        store = open_store(config.storage.url)
        auth = config.auth
        accounts = Accounts(store, self.grid, session_hours=auth.session_hours,
                            login_max_failures=auth.login_max_failures,
                            login_window_s=auth.login_window_s,
                            cookie_secure=auth.cookie_secure)
        ensure_admin(accounts, auth.admin_username)
        escalation = EscalationJob(Escalator(store, self.grid, config.deadlines,
                                             record_action=audit.record),
                                   config.deadlines.check_interval_s)
        manager = IncidentManager(store, self.evidence, cooldown_s=config.incident_cooldown_s,
                                  grid_cell_of={c.id: c.grid_cell for c in config.cameras}.get)
        # Without sinks the outbox keeps its messages: configuring a sink later delivers them.
        sinks = build_sinks(config.sinks)
        dispatcher = OutboxDispatcher(store, sinks, config.delivery) if sinks else None
        tasks = camera_tasks(config)
        count = worker_count(config.workers.count, len(tasks))
        shards = plan_shards(config, _checked_model(config.model) if tasks else config.model,
                             count)
        cameras = CameraStatuses(tasks, shard_cameras(shards))
        workers: Supervisor | InProcessWorkers | None = None
        if shards and count == 0:
            workers = InProcessWorkers(shards[0], self._on_message)
        elif shards:
            settings = config.workers
            workers = Supervisor(
                shards, self._on_message, self._on_worker_down,
                heartbeat_timeout_s=settings.heartbeat_timeout_s,
                restart_backoff_initial_s=settings.restart_backoff_initial_s,
                restart_backoff_max_s=settings.restart_backoff_max_s)
        return _Opened(store=store, accounts=accounts, manager=manager, escalation=escalation,
                       dispatcher=dispatcher, incidents=IncidentWriter(manager), shards=shards,
                       cameras=cameras, workers=workers)

    def _tell_previews(self, wanted: dict[str, float]) -> None:
        workers = self._opened.workers if self._opened is not None else None
        if workers is not None:
            workers.want_previews(wanted)

    def _on_message(self, _worker: int, incarnation: int, message: WorkerMessage) -> None:
        parts = self._parts()
        if isinstance(message, EventFound):
            parts.incidents.put(message.event)
        elif isinstance(message, ClipWritten):
            parts.incidents.put(message.clip)
        else:
            parts.cameras.apply(incarnation, message)

    def _on_worker_down(self, worker: int, reason: str) -> None:
        self._parts().cameras.worker_down(worker, reason)


def _checked_model(model: ModelSettings) -> ModelSettings:
    """Resolve and load the model once here, so that a missing or unusable model fails the
    start with a clear message instead of a worker crash loop; workers then load the
    verified file (never fetching it again)."""
    weights = resolve_weights(model.path or model.name, model.dir)
    create_detector(weights, backend=model.backend, threads=model.threads, conf=model.conf)
    return model.model_copy(update={"path": weights})


def serve(config: GridwatchSettings) -> int:
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
