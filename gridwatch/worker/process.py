"""Camera worker processes: how cameras are shared out, and what runs inside a worker.

A worker runs one `CameraShard` (a decoder thread per camera, one analysis thread, one
detector) and sends what it finds to the main process over its own pipe: the main process
keeps the incident store, the API and delivery. Processes rather than threads because the
analysis is Python: one analysis thread per core is what actually runs in parallel, and a
worker that crashes takes only its own cameras down (`gridwatch.worker.supervisor` restarts it).

Inside a worker OpenCV and onnxruntime are single-threaded (their thread pools only add CPU
on 2 cores: measured facts), and the process ends when the main process goes away.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Literal

import cv2

from gridwatch.demo import analysis_url, camera_options
from gridwatch.settings import GridwatchSettings
from gridwatch.settings.model import ModelSettings
from gridwatch.worker.messages import (
    Heartbeat,
    Hello,
    StartLive,
    Stop,
    WantPreviews,
    WorkerMessage,
    latest_slot,
)
from gridwatch.worker.shard import (
    AnalysisFactory,
    CameraShard,
    CameraTask,
    ShardSpec,
    camera_analyzer,
)

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def worker_count(setting: int | Literal["auto"], cameras: int) -> int:
    """Worker processes for `cameras` cameras: `auto` is one per available core; never more
    workers than cameras; 0 means the cameras run in the main process."""
    wanted = available_cores() if setting == "auto" else setting
    return min(wanted, cameras)


def camera_tasks(config: GridwatchSettings) -> list[CameraTask]:
    """The enabled cameras with their analysis settings resolved (camera over defaults)."""
    defaults = config.analysis
    tasks = []
    for camera in config.cameras:
        if not camera.enabled:
            continue
        own = camera.analysis
        tasks.append(CameraTask(
            camera=camera, uri=analysis_url(camera), options=camera_options(camera),
            mode=own.mode or defaults.mode, fps=own.fps or defaults.fps,
            quiet_s=own.quiet_s or defaults.quiet_s, conf=config.model.conf))
    return tasks


def plan_shards(config: GridwatchSettings, model: ModelSettings, shards: int,
                analysis: AnalysisFactory = camera_analyzer) -> list[ShardSpec]:
    """Deal the cameras out to `shards` shards (round robin, in configuration order, so a
    restarted worker gets the same cameras back)."""
    tasks = camera_tasks(config)
    count = max(1, shards)
    level = logging.getLogger().getEffectiveLevel()
    specs = []
    for index in range(count):
        mine = tuple(tasks[index::count])
        if mine:
            specs.append(ShardSpec(
                index=index, tasks=mine, model=model, evidence_dir=config.storage.evidence_dir,
                clips=config.clips, preview_interval_s=config.workers.preview_interval_s,
                preview_idle_interval_s=config.workers.preview_idle_interval_s,
                log_level=level, analysis=analysis))
    return specs


class PipeSender:
    """A worker's messages to the main process, sent over its pipe by a thread of their own.

    Reliable messages go first and are all sent; latest-only ones wait in one slot per
    (kind, camera), a newer one replacing an unsent one (counted in `dropped`). The shard's
    threads therefore never block on the pipe, however slow the main process is.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cond = threading.Condition()
        self._reliable: deque[WorkerMessage] = deque()
        self._latest: dict[tuple[type, str | None], WorkerMessage] = {}
        self._closed = False
        self.broken = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, message: WorkerMessage) -> None:
        slot = latest_slot(message)
        with self._cond:
            if self._closed or self.broken.is_set():
                return
            if slot is None:
                self._reliable.append(message)
            else:
                if slot in self._latest:
                    self.dropped += 1
                self._latest[slot] = message
            self._cond.notify()

    def close(self, timeout: float) -> None:
        """Send what is waiting (up to `timeout`), then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _next(self) -> WorkerMessage | None:
        with self._cond:
            self._cond.wait_for(lambda: self._reliable or self._latest or self._closed)
            if self._reliable:
                return self._reliable.popleft()
            if self._latest:
                return self._latest.pop(next(iter(self._latest)))
            return None

    def _run(self) -> None:
        while (message := self._next()) is not None:
            try:
                self._conn.send(message)
            except (OSError, ValueError) as exc:
                log.warning("link to the main process broken (%s); stopping", exc)
                self.broken.set()
                return


def worker_main(spec: ShardSpec, link: Connection, control: Connection) -> None:
    """Entry point of a worker process: run the shard until told to stop, SIGTERM, or the
    main process disappears."""
    _configure_process(spec)
    stop = threading.Event()
    # Ctrl-C reaches the whole process group: the main process decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    out = PipeSender(link)
    out.start()
    shard: CameraShard | None = None
    try:
        shard = CameraShard(spec, out)
        out.send(Hello(os.getpid(), tuple(spec.camera_ids)))
        shard.start()
        _serve(spec, shard, out, control, stop)
    finally:
        if shard is not None:
            shard.stop()
        out.close(timeout=10)


def _configure_process(spec: ShardSpec) -> None:
    logging.basicConfig(level=spec.log_level, format=LOG_FORMAT)
    cv2.setNumThreads(1)
    log.info("worker %d (pid %d): %d camera(s): %s", spec.index, os.getpid(), len(spec.tasks),
             ", ".join(spec.camera_ids))


def _serve(spec: ShardSpec, shard: CameraShard, out: PipeSender, control: Connection,
           stop: threading.Event) -> None:
    """Send a heartbeat every `heartbeat_s` and obey the control pipe in between (`Stop`,
    `WantPreviews`, `StartLive`), until told to stop or the main process is gone."""
    next_beat = time.monotonic()
    while not stop.is_set() and not out.broken.is_set():
        if time.monotonic() >= next_beat:
            out.send(heartbeat(shard, out.dropped))
            next_beat = time.monotonic() + spec.heartbeat_s
        try:
            if not control.poll(max(0.0, next_beat - time.monotonic())):
                continue
            command = control.recv()
        except (EOFError, OSError):
            log.warning("worker %d: the main process is gone; stopping", spec.index)
            return
        if isinstance(command, Stop):
            return
        if isinstance(command, WantPreviews):
            shard.want_previews(command.cameras)
        elif isinstance(command, StartLive):
            shard.start_live(command.camera, command.conn)
        else:
            log.warning("worker %d: unknown control message %r ignored", spec.index, command)


def heartbeat(shard: CameraShard, messages_dropped: int = 0) -> Heartbeat:
    """The process's vital signs and its cameras' health."""
    times = os.times()
    return Heartbeat(pid=os.getpid(), cpu_s=times.user + times.system,
                     rss_bytes=rss_bytes(os.getpid()), threads=threading.active_count(),
                     analysis_age_s=shard.analysis_age_s, sent_at=time.time(),
                     messages_dropped=messages_dropped, cameras=shard.reports())


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def shard_cameras(specs: Sequence[ShardSpec]) -> dict[str, int]:
    """Which shard runs each camera."""
    return {camera: spec.index for spec in specs for camera in spec.camera_ids}
