"""Live video for the browser, from the worker that holds the camera.

The main process asks a worker for a camera's live video with `StartLive`, handing it one
end of a dedicated pipe (`open_live_pipe`); the worker's `LiveStreamer` joins the camera's
packet tap (`gridwatch.ingest.packet_tap`) and sends over that pipe a `StreamDescription`
whenever a stream starts and then each `EncodedPacket`: the packets as demuxed, never
decoded, H.264 turned into Annex B with SPS/PPS before each keyframe (what WebRTC carries).

The reader thread only hands packets to a bounded queue; a thread of the streamer's own
sends them. A viewer that falls behind therefore never slows ingest down and never builds a
backlog: when the queue is full it is emptied and streaming resumes at the next keyframe
(everything in between could not be decoded anyway). The main process sends something (a
keepalive) about every second; a streamer that hears nothing for `keepalive_timeout_s`, or
whose pipe closes, stops and leaves the tap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from multiprocessing.connection import Connection

import av
from av.bitstream import BitStreamFilterContext

from gridwatch.ingest.packet_tap import EncodedPacket, StreamDescription

log = logging.getLogger(__name__)

KEEPALIVE_S = 1.0
"""How often the main process tells a streamer its viewer is still there."""
KEEPALIVE_TIMEOUT_S = 5.0
"""Silence after which a streamer stops."""
MAX_QUEUED = 60
"""Packets waiting to be sent (2 s at 30 fps) before the queue drops to the next keyframe."""

LiveMessage = StreamDescription | EncodedPacket


class LiveStreamer:
    """One viewed camera's packets to the main process over `conn` (a `PacketSink`)."""

    def __init__(self, camera_id: str, conn: Connection, *,
                 on_end: Callable[[LiveStreamer], None] | None = None,
                 max_queued: int = MAX_QUEUED,
                 keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S) -> None:
        self.camera_id = camera_id
        self.max_queued = max_queued
        self.keepalive_timeout_s = keepalive_timeout_s
        self.sent = 0
        self.dropped = 0
        self.end_reason: str | None = None
        self._conn = conn
        self._on_end = on_end
        self._cond = threading.Condition()
        self._queue: deque[LiveMessage] = deque()
        self._waiting_for_keyframe = True
        self._annexb: BitStreamFilterContext | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-{camera_id}",
                                        daemon=True)

    def start(self) -> LiveStreamer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, reason: str = "stopped") -> None:
        """End the stream (any thread); the pipe is closed by the streamer's thread."""
        with self._cond:
            if self.end_reason is None:
                self.end_reason = reason
            self._stopped.set()
            self._cond.notify()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the camera's reader thread ------------------------------------------------------

    def begin(self, stream: av.video.stream.VideoStream) -> None:
        ctx = stream.codec_context
        self._annexb = _annexb_filter(stream) if ctx.name == "h264" else None
        description = StreamDescription(
            camera_id=self.camera_id, codec=ctx.name, profile=ctx.profile, width=ctx.width,
            height=ctx.height, b_frames=bool(ctx.has_b_frames),
            extradata=b"" if self._annexb is not None else bytes(ctx.extradata or b""),
            time_base=stream.time_base or Fraction(1, 90_000),
            rate=stream.average_rate or stream.guessed_rate)
        with self._cond:
            self._queue.append(description)
            self._waiting_for_keyframe = True
            self._cond.notify()

    def push(self, packet: av.Packet, wall: float) -> None:
        if self._stopped.is_set() or not packet.size:
            return
        if self._waiting_for_keyframe and not packet.is_keyframe:
            return
        annexb = self._annexb
        out = annexb.filter(_copy(packet)) if annexb is not None else [packet]
        encoded = [EncodedPacket(bytes(p), p.pts, p.dts, bool(p.is_keyframe), wall)
                   for p in out if p.size]
        with self._cond:
            if len(self._queue) + len(encoded) > self.max_queued:
                # The viewer fell behind: drop what waits, resume at the next keyframe.
                dropped = [m for m in self._queue if isinstance(m, EncodedPacket)]
                kept = [m for m in self._queue if isinstance(m, StreamDescription)][-1:]
                self._queue = deque(kept)
                self.dropped += len(dropped)
                if not packet.is_keyframe:
                    self.dropped += len(encoded)
                    self._waiting_for_keyframe = True
                    return
            self._waiting_for_keyframe = False
            self._queue.extend(encoded)
            self._cond.notify()

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    # --- the streamer's thread -----------------------------------------------------------

    def _run(self) -> None:
        heard = time.monotonic()
        try:
            while not self._stopped.is_set():
                with self._cond:
                    self._cond.wait_for(lambda: self._queue or self._stopped.is_set(),
                                        timeout=0.25)
                    batch, self._queue = list(self._queue), deque()
                for message in batch:
                    self._conn.send(message)
                    if isinstance(message, EncodedPacket):
                        self.sent += 1
                while self._conn.poll():
                    self._conn.recv()
                    heard = time.monotonic()
                if time.monotonic() - heard > self.keepalive_timeout_s:
                    self.stop(f"no keepalive for {self.keepalive_timeout_s:g} s")
        except (EOFError, OSError, ValueError) as exc:
            self.stop(f"viewer gone ({type(exc).__name__})")
        finally:
            self._conn.close()
            log.info("live video of %s ended: %s (%d packets sent, %d dropped)",
                     self.camera_id, self.end_reason, self.sent, self.dropped)
            if self._on_end is not None:
                self._on_end(self)


def _copy(packet: av.Packet) -> av.Packet:
    """A packet of its own for the filter, which takes the data of what it is given: the
    original still goes to the decoder and the other sinks."""
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    return copy


def _annexb_filter(stream: av.video.stream.VideoStream) -> BitStreamFilterContext:
    """WebRTC wants Annex B with SPS/PPS before each keyframe.

    MP4 stores length-prefixed NAL units with SPS/PPS in the header (converted by
    h264_mp4toannexb); RTSP delivers Annex B but may carry SPS/PPS only in the SDP
    (dump_extra repeats them before keyframes).
    """
    extradata = stream.codec_context.extradata
    if extradata and extradata[0] == 1:
        return BitStreamFilterContext("h264_mp4toannexb", stream)
    return BitStreamFilterContext("dump_extra=freq=keyframe", stream)


class LiveLink:
    """The main process's end of one live stream (`gridwatch.web.views.LiveVideo`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def receive(self, timeout: float) -> LiveMessage | None:
        """The next description or packet; None after `timeout`; EOFError once the worker
        ended the stream."""
        if not self._conn.poll(timeout):
            return None
        message: LiveMessage = self._conn.recv()
        return message

    def keepalive(self) -> None:
        self._conn.send(None)

    def close(self) -> None:
        self._conn.close()
