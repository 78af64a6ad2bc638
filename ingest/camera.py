"""One thread per camera: connect, read, watch, reconnect, and report health.

The runner never gives up on a camera while it runs: every failure becomes a state with a
reason (what the console shows) and a backoff delay; only `stop()` or the end of a
non-looping file ends its thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Self

from gridwatch.common.redact import describe_error, redact
from gridwatch.ingest.av_source import AvSource
from gridwatch.ingest.backoff import ReconnectDelays
from gridwatch.ingest.counters import CameraCounters
from gridwatch.ingest.errors import SourceError
from gridwatch.ingest.frame import Frame
from gridwatch.ingest.mailbox import LatestFrame
from gridwatch.ingest.packet_buffer import PacketRingBuffer
from gridwatch.ingest.packet_tap import PacketFanout
from gridwatch.ingest.source import Source
from gridwatch.ingest.sources import open_source
from gridwatch.ingest.state import (
    REJECTED,
    CameraState,
    StateChange,
    StateHistory,
    StreamCounters,
    StreamHealth,
)
from gridwatch.ingest.watchdog import WATCHDOG, StallWatchdog
from gridwatch.settings.stream import StreamSettings

log = logging.getLogger(__name__)

StateListener = Callable[[str, StateChange], None]
FrameListener = Callable[[str], None]
FrameFilter = Callable[[Frame], bool]


class CameraRunner:
    """Owns one camera's reader thread and its state machine.

    Frames go into `mailbox` (one slot: the newest wins); `on_frame(camera_id)` is called
    after each, so that one consumer can serve many cameras. Frames `accept` turns down
    (a consumer analysing 5 of 25 frames a second) are decoded but never delivered, so
    they are not counted as dropped. `t` and `index` continue across
    reconnects (t advances by the wall-clock gap), so downstream tracking never sees time
    run backwards after an outage. Every encoded video packet goes to the sinks of
    `packets` (`gridwatch.ingest.packet_tap`): the `packet_buffer`, when given, which keeps
    the last seconds for evidence clips, and live viewers while someone watches.
    """

    def __init__(
        self,
        camera_id: str,
        uri: str,
        options: StreamSettings | None = None,
        *,
        on_state: StateListener | None = None,
        on_frame: FrameListener | None = None,
        accept: FrameFilter | None = None,
        watchdog: StallWatchdog | None = None,
        history_size: int = 50,
        packet_buffer: PacketRingBuffer | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.packet_buffer = packet_buffer
        self.packets = PacketFanout() if packet_buffer is None else PacketFanout(packet_buffer)
        self.display_uri = redact(uri)
        self.options = options or StreamSettings()
        self.counters = CameraCounters()
        self.mailbox = LatestFrame()
        self._uri = uri
        self._on_state = on_state
        self._on_frame = on_frame
        self._accept = accept
        self._watchdog = watchdog or WATCHDOG
        self._backoff = ReconnectDelays(self.options)
        self._keyframes_only = self.options.keyframes_only
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: Source | None = None
        self._progress_at = 0.0
        self._stall_flagged = False
        self._states = StateHistory(CameraState.CONNECTING, "not started", time.time(),
                                    history_size)
        self._next_index = 0
        self._t_base = 0.0
        self._last_t: float | None = None
        self._last_wall = 0.0

    def __repr__(self) -> str:
        return (f"CameraRunner({self.camera_id!r}, {self.display_uri!r}, "
                f"state={self._states.state.value!r})")

    # --- consumer side -------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: already started")
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}",
                                        daemon=True)
        self._watchdog.watch(self)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop reading; True when the thread ended within `timeout`.

        A read blocked in FFmpeg ends at the latest at its open/read timeout, hence the
        default wait.
        """
        self._stopping.set()
        with self._lock:
            if self._source is not None:
                self._source.interrupt()
        self.mailbox.close()
        if self._thread is None:
            return True
        if timeout is None:
            timeout = 2 * self.options.open_timeout_s + self.options.read_timeout_s + 1
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame (None on timeout or once stopped)."""
        return self.mailbox.get(timeout)

    def mark_analysed(self, count: int = 1) -> None:
        self.counters.mark_analysed(count)

    @property
    def keyframes_only(self) -> bool:
        return self._keyframes_only

    def set_keyframes_only(self, enabled: bool) -> None:
        """Watch mode (keyframes only) or active mode (every frame), without reconnecting."""
        with self._lock:
            self._keyframes_only = enabled
            if self._source is not None:
                self._source.set_keyframes_only(enabled)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> CameraState:
        return self._states.state

    @property
    def reason(self) -> str:
        return self._states.reason

    @property
    def history(self) -> list[StateChange]:
        """Past changes of state or reason, oldest first (bounded)."""
        with self._lock:
            return self._states.recent(None)

    def status(self) -> StreamHealth:
        """This camera as its worker reports it; credentials are never part of it."""
        with self._lock:
            return StreamHealth(
                camera_id=self.camera_id, uri=self.display_uri, state=self._states.state,
                reason=self._states.reason, since=self._states.since, running=self.running,
                keyframes_only=self._keyframes_only,
                counters=StreamCounters.model_validate(self.counters.snapshot()),
                recent_changes=self._states.recent(),
                packet_buffer=(None if self.packet_buffer is None
                               else self.packet_buffer.stats()))

    def health(self) -> dict[str, object]:
        """`status()` as JSON-ready data."""
        return self.status().model_dump(mode="json")

    # --- state machine -------------------------------------------------------------------

    def _set_state(self, state: CameraState, reason: str) -> None:
        """Record a change of state or reason and tell the listener (from the reader or
        the watchdog thread)."""
        reason = redact(reason)
        with self._lock:
            change = self._states.set(state, reason, time.time())
        if change is None:
            return
        level = logging.WARNING if state in REJECTED else logging.INFO
        log.log(level, "camera %s: %s (%s; was %s)", self.camera_id, state.value, reason,
                change.previous.value if change.previous else None)
        if self._on_state is not None:
            try:
                self._on_state(self.camera_id, change)
            except Exception:
                log.exception("camera %s: state listener failed", self.camera_id)

    def check_stall(self) -> None:
        """Called by the watchdog while the reader may be blocked inside FFmpeg."""
        source = self._source
        if source is not None and self._flag_stall():
            source.interrupt()

    def _flag_stall(self) -> bool:
        """Mark the session stalled once it went `stall_timeout_s` without progress.

        Also asked by the reader before each frame: a frame that arrives after such a gap
        does not count as recovery. When PyAV's read timeout fires on RTSP it first hands
        out the frame it held back and fails only on the next read (measured), so the gap
        itself is the stall.
        """
        with self._lock:
            if self._stall_flagged:
                return True
            idle = self._idle_s()
            if idle < self.options.stall_timeout_s:
                return False
            self._stall_flagged = True
        self._set_state(CameraState.STALLED, f"connected but no frame for {idle:.1f} s")
        return True

    def _idle_s(self) -> float:
        """Seconds without progress: frames, or packets in keyframes-only mode (frames then
        come once per GOP) and while the decoder waits for a keyframe (up to a GOP)."""
        progress = self._progress_at
        source = self._source
        if self._keyframes_only or (source is not None and source.awaiting_keyframe):
            progress = max(progress, self.counters.last_packet_monotonic or 0.0)
        return time.monotonic() - progress

    # --- reader thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            log.error("camera %s: reader failed: %s", self.camera_id, describe_error(exc))
            self._set_state(CameraState.OFFLINE, f"reader failed: {describe_error(exc)}")
        finally:
            self._watchdog.unwatch(self)
            self.mailbox.close()

    def _loop(self) -> None:
        self._set_state(CameraState.CONNECTING, f"opening {self.display_uri}")
        attempts = 0
        while not self._stopping.is_set():
            if attempts:
                self.counters.reconnects += 1
            attempts += 1
            try:
                source = open_source(self._uri, self.options, self.camera_id, self.counters)
            except SourceError as exc:
                self._set_state(exc.state, exc.reason)
                self._wait_before_retry(exc.state)
                continue
            outcome = self._read(source)
            if outcome is None:
                return
            state, reason = outcome
            self._set_state(state, reason)
            if not source.live and state is CameraState.OFFLINE:
                return
            self._wait_before_retry(state)

    def _read(self, source: Source) -> tuple[CameraState, str] | None:
        """Stream one session; the failure that ended it, or None when stopping."""
        with self._lock:
            source.set_keyframes_only(self._keyframes_only)
            if isinstance(source, AvSource):
                source.record_packets(self.packets)
            self._source = source
            self._progress_at = time.monotonic()
            self._stall_flagged = False
            if self._stopping.is_set():
                source.interrupt()
        self._t_base = self._continued_t()
        try:
            for frame in source:
                if self._flag_stall():
                    break
                self._deliver(frame)
        except SourceError as exc:
            failure = (exc.state, exc.reason)
        else:
            failure = (CameraState.OFFLINE,
                       "stream ended (server closed it)" if source.live else "end of file")
        finally:
            with self._lock:
                self._source = None
            source.close()
        if self._stopping.is_set():
            return None
        if self._stall_flagged:
            return CameraState.STALLED, self._states.reason
        return failure

    def _deliver(self, frame: Frame) -> None:
        self._progress_at = time.monotonic()
        if self._states.state is not CameraState.ONLINE:
            self._set_state(CameraState.ONLINE, "receiving frames")
            self._backoff.reset()
        frame.index = self._next_index
        frame.t += self._t_base
        self._next_index += 1
        self._last_t, self._last_wall = frame.t, frame.wall
        if self._accept is not None and not self._accept(frame):
            return
        if self.mailbox.put(frame):
            self.counters.frames_dropped += 1
        if self._on_frame is not None:
            self._on_frame(self.camera_id)

    def _continued_t(self) -> float:
        if self._last_t is None:
            return 0.0
        return self._last_t + max(0.0, time.time() - self._last_wall)

    def _wait_before_retry(self, state: CameraState) -> None:
        delay = self._backoff.next_delay(state)
        log.debug("camera %s: retry in %.2f s", self.camera_id, delay)
        self._stopping.wait(delay)
