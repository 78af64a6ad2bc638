"""Starts the camera worker processes, hears them, restarts those that die or hang.

One thread does it all with `multiprocessing.connection.wait` on every worker's pipe and
process sentinel: messages are handed on as they arrive, an exit (SIGKILL included) is seen
at once, and a worker that goes silent or whose analysis stops coming round for
`heartbeat_timeout_s` (a wedged or SIGSTOPped process) is killed and restarted like a
crashed one. Restarts back off exponentially while a worker keeps failing, and a restarted
worker gets the same cameras (its `ShardSpec`); events it had open are re-triggered if the
condition still holds, and the IncidentManager's dedup/cooldown folds them into the same
incident.

The main process tells a worker which of its cameras' previews someone looks at
(`want_previews`): the supervisor thread sends it, so a request never waits on a worker's
pipe, and sends what still lasts again to a restarted worker.

A camera's live video comes from its worker too (`open_live`): the main process makes a
pipe for it and hands the worker one end in a `StartLive` message; nothing in this process
ever opens a camera.

Workers come from a fork server (the `forkserver` start method): forking a process that runs
threads is unsafe, and the fork server imported the heavy modules once, so a restart does not
pay seconds of imports.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from gridwatch.common.backoff import ExponentialBackoff
from gridwatch.worker.live import LiveLink
from gridwatch.worker.messages import (
    Heartbeat,
    Hello,
    StartLive,
    Stop,
    WantPreviews,
    WorkerMessage,
)
from gridwatch.worker.process import cpu_seconds, heartbeat, rss_bytes, worker_main
from gridwatch.worker.shard import CameraShard, ShardSpec

log = logging.getLogger(__name__)

MessageHandler = Callable[[int, int, WorkerMessage], None]
"""(worker index, incarnation, message): called on the supervisor's thread; be quick."""
DownHandler = Callable[[int, str], None]
"""(worker index, reason): a worker stopped unexpectedly; its cameras are down."""

MAX_MESSAGES_PER_TURN = 200


WORKER_MODULES = ["gridwatch.worker.process"]
"""What the fork server imports before it forks workers: the worker entry and, through it,
the shard, ingest and the detection core; nothing of the web side or the database."""


def worker_context() -> ForkServerContext:
    """The fork-server context, with the worker's modules imported in the server.

    A worker forked from it starts in milliseconds. Each worker still runs the main module
    again (multiprocessing's rule; Python 3.11 cannot preload `__main__` in the fork server),
    which is cheap when it is the command line, whose imports are deferred.
    """
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return context


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One worker as the API and the metrics show it."""

    index: int
    pid: int | None
    alive: bool
    incarnation: int
    restarts: int
    cameras: list[str]
    started_at: float | None
    cpu_s: float | None
    rss_bytes: int | None
    heartbeat_age_s: float | None
    down_reason: str | None
    messages_dropped: int | None = None
    """Messages its current process replaced before they were sent (last heartbeat)."""
    analysis_age_s: float | None = None
    """Seconds since its analysis thread came round, as of its last heartbeat."""


@dataclass(eq=False)
class _Worker:
    spec: ShardSpec
    process: BaseProcess | None = None
    link: Connection | None = None
    control: Connection | None = None
    incarnation: int = 0
    restarts: int = 0
    failures: int = 0
    started_mono: float = 0.0
    started_at: float | None = None
    said_hello: bool = False
    last_message: float = 0.0
    heartbeat: Heartbeat | None = None
    heartbeat_at: float = 0.0
    kill_reason: str | None = None
    down_reason: str | None = None
    next_start: float | None = 0.0

    @property
    def index(self) -> int:
        return self.spec.index


class Supervisor:
    """Keeps one worker process per `ShardSpec` running until `stop()`."""

    def __init__(
        self,
        specs: list[ShardSpec],
        on_message: MessageHandler,
        on_down: DownHandler | None = None,
        *,
        heartbeat_timeout_s: float = 15.0,
        start_timeout_s: float = 60.0,
        restart_backoff_initial_s: float = 0.5,
        restart_backoff_max_s: float = 30.0,
        stable_after_s: float = 60.0,
        context: ForkServerContext | SpawnContext | None = None,
    ) -> None:
        self._workers = [_Worker(spec) for spec in specs]
        self._on_message = on_message
        self._on_down = on_down
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.start_timeout_s = start_timeout_s
        self.stable_after_s = stable_after_s
        self._backoff = ExponentialBackoff(restart_backoff_initial_s, restart_backoff_max_s,
                                           jitter_s=restart_backoff_initial_s)
        self._context = context or worker_context()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._monitor, name="supervisor", daemon=True)
        # Control pipes are written by the supervisor thread and by `stop()`.
        self._control_lock = threading.Lock()
        self._owner = {camera: w.index for w in self._workers for camera in w.spec.camera_ids}
        self._wanted: dict[str, float] = {}
        """Camera id to the monotonic time its previews stop being wanted."""
        self._unsent: set[int] = set()
        """Workers that have preview demand to be told."""

    def start(self) -> None:
        self._thread.start()

    def want_previews(self, wanted: Mapping[str, float]) -> None:
        """Someone looks at these cameras' pictures (camera id to seconds from now): their
        workers are told on the supervisor thread's next turn (within 0.2 s)."""
        now = time.monotonic()
        with self._control_lock:
            for camera, for_s in wanted.items():
                owner = self._owner.get(camera)
                if owner is not None:
                    self._wanted[camera] = max(self._wanted.get(camera, 0.0), now + for_s)
                    self._unsent.add(owner)

    def open_live(self, camera_id: str) -> LiveLink:
        """A live stream of the camera's packets from the worker that holds it; raises
        ConnectionError, naming the camera and why, when that worker is not running."""
        owner = self._owner.get(camera_id)
        if owner is None:
            raise ConnectionError(f"camera {camera_id}: no worker runs it")
        worker = self._workers[owner]
        with self._control_lock:
            control, process = worker.control, worker.process
            if (self._stopping.is_set() or control is None or process is None
                    or not process.is_alive() or not worker.said_hello):
                why = worker.down_reason or "it is starting"
                raise ConnectionError(f"camera {camera_id}: its worker {owner} is not "
                                      f"running ({why}); no live video until it is back")
            mine, theirs = self._context.Pipe(duplex=True)
            try:
                control.send(StartLive(camera_id, theirs))
            except OSError as exc:
                mine.close()
                raise ConnectionError(f"camera {camera_id}: its worker {owner} cannot be "
                                      f"reached ({exc})") from None
            finally:
                # The worker gets its own copy of the descriptor with the message.
                theirs.close()
        return LiveLink(mine)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every worker to stop (they close their cameras' open events and send them),
        keep receiving until they have exited, and kill those that take longer."""
        self._stopping.set()
        with self._control_lock:
            for worker in self._workers:
                if worker.control is not None:
                    with contextlib.suppress(OSError):
                        worker.control.send(Stop())
        if not self._thread.is_alive():
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            for worker in self._workers:
                if worker.process is not None and worker.process.pid is not None:
                    log.warning("worker %d did not stop within %.0f s; killing it",
                                worker.index, timeout)
                    _kill(worker.process.pid)
            self._thread.join(10)

    def statuses(self) -> list[WorkerStatus]:
        now = time.monotonic()
        out = []
        for w in self._workers:
            process = w.process
            pid = process.pid if process is not None else None
            alive = process is not None and process.is_alive()
            out.append(WorkerStatus(
                index=w.index, pid=pid, alive=alive, incarnation=w.incarnation,
                restarts=w.restarts, cameras=w.spec.camera_ids, started_at=w.started_at,
                cpu_s=cpu_seconds(pid) if alive and pid else None,
                rss_bytes=rss_bytes(pid) if alive and pid else None,
                heartbeat_age_s=now - w.heartbeat_at if w.heartbeat_at else None,
                down_reason=w.down_reason,
                messages_dropped=w.heartbeat.messages_dropped if w.heartbeat else None,
                analysis_age_s=w.heartbeat.analysis_age_s if w.heartbeat else None))
        return out

    # --- the supervisor thread ------------------------------------------------------------

    def _monitor(self) -> None:
        while True:
            now = time.monotonic()
            for worker in self._workers:
                if worker.process is None:
                    if (not self._stopping.is_set() and worker.next_start is not None
                            and now >= worker.next_start):
                        self._spawn(worker)
                elif not worker.process.is_alive():
                    self._reap(worker)
                else:
                    self._check(worker, now)
            if self._stopping.is_set() and all(w.process is None for w in self._workers):
                return
            self._tell_wanted(now)
            self._receive_all(timeout=0.2)

    def _tell_wanted(self, now: float) -> None:
        """Send each worker with news its cameras' preview demand that still lasts. A
        worker that is down gets it when it starts again (`_spawn`)."""
        with self._control_lock:
            if not self._unsent or self._stopping.is_set():
                return
            self._wanted = {c: until for c, until in self._wanted.items() if until > now}
            for worker in self._workers:
                if worker.index not in self._unsent or worker.control is None:
                    continue
                cameras = {c: self._wanted[c] - now for c in worker.spec.camera_ids
                           if c in self._wanted}
                if cameras:
                    with contextlib.suppress(OSError):
                        worker.control.send(WantPreviews(cameras))
            self._unsent.clear()

    def _receive_all(self, timeout: float) -> None:
        owners: dict[Any, _Worker] = {}
        for worker in self._workers:
            if worker.link is not None:
                owners[worker.link] = worker
            if worker.process is not None:
                owners[worker.process.sentinel] = worker
        if not owners:
            time.sleep(timeout)
            return
        for ready in wait(list(owners), timeout):
            worker = owners[ready]
            if ready is worker.link:
                self._receive(worker, MAX_MESSAGES_PER_TURN)

    def _receive(self, worker: _Worker, limit: int | None) -> None:
        link = worker.link
        received = 0
        try:
            while link is not None and link.poll() and (limit is None or received < limit):
                message = link.recv()
                received += 1
                self._handle(worker, message)
        except (EOFError, OSError):
            # The worker is gone (or going): its sentinel says so next turn.
            if worker.link is not None:
                worker.link.close()
            worker.link = None

    def _handle(self, worker: _Worker, message: WorkerMessage) -> None:
        now = time.monotonic()
        worker.last_message = now
        if isinstance(message, Hello):
            worker.said_hello = True
        elif isinstance(message, Heartbeat):
            worker.heartbeat, worker.heartbeat_at = message, now
        try:
            self._on_message(worker.index, worker.incarnation, message)
        except Exception:
            log.exception("worker %d: handling a %s message failed", worker.index,
                          type(message).__name__)

    def _check(self, worker: _Worker, now: float) -> None:
        """Kill a worker that stopped answering, or whose analysis stopped coming round."""
        if worker.kill_reason is not None or self._stopping.is_set():
            return
        reason = None
        if not worker.said_hello:
            if now - worker.started_mono > self.start_timeout_s:
                reason = f"did not start within {self.start_timeout_s:g} s"
        elif now - worker.last_message > self.heartbeat_timeout_s:
            reason = f"no heartbeat for {now - worker.last_message:.1f} s"
        elif (worker.heartbeat is not None
              and worker.heartbeat.analysis_age_s > self.heartbeat_timeout_s):
            # The process answers, but its analysis thread stopped coming round.
            reason = f"analysis stuck for {worker.heartbeat.analysis_age_s:.1f} s"
        if reason is not None and worker.process is not None and worker.process.pid:
            log.error("worker %d (pid %d): %s; killing it", worker.index, worker.process.pid,
                      reason)
            worker.kill_reason = reason
            _kill(worker.process.pid)

    def _reap(self, worker: _Worker) -> None:
        """The worker exited: take what it still sent, say why it ended, plan its restart."""
        assert worker.process is not None
        self._receive(worker, None)
        worker.process.join(1)
        code = worker.process.exitcode
        reason = worker.kill_reason or _exit_reason(code)
        for conn in (worker.link, worker.control):
            if conn is not None:
                conn.close()
        ran_s = time.monotonic() - worker.started_mono
        worker.process = worker.link = worker.control = None
        if self._stopping.is_set() and worker.kill_reason is None and code == 0:
            log.info("worker %d stopped", worker.index)
            worker.next_start = None
            return
        worker.down_reason = reason
        if self._stopping.is_set():
            log.warning("worker %d ended while stopping: %s", worker.index, reason)
            worker.next_start = None
            return
        worker.failures = 1 if ran_s >= self.stable_after_s else worker.failures + 1
        delay = self._backoff.delay(worker.failures)
        worker.next_start = time.monotonic() + delay
        log.error("worker %d (%d camera(s)) %s after %.1f s; restarting in %.1f s",
                  worker.index, len(worker.spec.tasks), reason, ran_s, delay)
        if self._on_down is not None:
            try:
                self._on_down(worker.index, f"worker {worker.index} {reason}; restarting")
            except Exception:
                log.exception("worker %d: down handler failed", worker.index)

    def _spawn(self, worker: _Worker) -> None:
        link_in, link_out = self._context.Pipe(duplex=False)
        control_in, control_out = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main, args=(worker.spec, link_out, control_in),
            name=f"gridwatch-worker-{worker.index}", daemon=True)
        try:
            process.start()
        except Exception:
            log.exception("worker %d could not be started", worker.index)
            for conn in (link_in, link_out, control_in, control_out):
                conn.close()
            worker.failures += 1
            worker.next_start = time.monotonic() + self._backoff.delay(worker.failures)
            return
        # The worker holds its own ends now; closing ours lets each side see the other end.
        link_out.close()
        control_in.close()
        if worker.incarnation:
            worker.restarts += 1
        worker.incarnation += 1
        worker.process, worker.link, worker.control = process, link_in, control_out
        worker.started_mono = worker.last_message = time.monotonic()
        worker.started_at = time.time()
        worker.said_hello = False
        worker.heartbeat, worker.heartbeat_at = None, 0.0
        worker.kill_reason = None
        worker.next_start = None
        with self._control_lock:
            # Its previous incarnation's preview demand: whatever of it still lasts.
            self._unsent.add(worker.index)
        log.info("worker %d started (pid %s, incarnation %d): %s", worker.index, process.pid,
                 worker.incarnation, ", ".join(worker.spec.camera_ids))


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "vanished"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class InProcessWorkers:
    """The `workers.count: 0` mode: one shard in the main process, reporting through the
    same messages as a worker (health once per `heartbeat_s`), with nothing to restart."""

    def __init__(self, spec: ShardSpec, on_message: MessageHandler) -> None:
        self.spec = spec
        self._on_message = on_message
        self._shard: CameraShard | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._heartbeats, name="shard-heartbeat",
                                        daemon=True)
        self._started_at: float | None = None

    def send(self, message: WorkerMessage) -> None:
        self._on_message(self.spec.index, 1, message)

    def start(self) -> None:
        self._shard = CameraShard(self.spec, self)
        self._shard.start()
        self._started_at = time.time()
        self._thread.start()

    def want_previews(self, wanted: Mapping[str, float]) -> None:
        """Someone looks at these cameras' pictures (camera id to seconds from now); the
        shard is right here, so it hears it at once."""
        if self._shard is not None:
            self._shard.want_previews(wanted)

    def open_live(self, camera_id: str) -> LiveLink:
        """A live stream of the camera's packets from the shard right here, over a pipe as
        from a worker process."""
        shard = self._shard
        if shard is None or self._stopping.is_set() or camera_id not in shard.cameras:
            raise ConnectionError(f"camera {camera_id}: its shard is not running")
        mine, theirs = mp.Pipe(duplex=True)
        shard.start_live(camera_id, theirs)
        return LiveLink(mine)

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._shard is not None:
            self._shard.stop()
            self._thread.join(timeout)

    def statuses(self) -> list[WorkerStatus]:
        pid = os.getpid()
        return [WorkerStatus(
            index=self.spec.index, pid=pid, alive=self._shard is not None, incarnation=1,
            restarts=0, cameras=self.spec.camera_ids, started_at=self._started_at,
            cpu_s=cpu_seconds(pid), rss_bytes=rss_bytes(pid), heartbeat_age_s=None,
            down_reason=None, messages_dropped=0,
            analysis_age_s=self._shard.analysis_age_s if self._shard is not None else None)]

    def _heartbeats(self) -> None:
        while not self._stopping.wait(self.spec.heartbeat_s):
            if self._shard is not None:
                self.send(heartbeat(self._shard))
