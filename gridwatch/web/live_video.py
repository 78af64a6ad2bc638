"""A camera's video as a WebRTC track, built from the packets its worker streams.

The worker that holds the camera sends its encoded packets (`gridwatch.web.views.LiveVideo`);
this process never opens a camera. WebRTC has no picture reordering: Chromium 156 fed a
stream with B-frames decoded about two pictures a GOP (2 of 90), so only H.264 without
B-frames is passed through (Annex B, as the worker sends it); anything else is decoded here
with PyAV and encoded by aiortc. `WorkerTrack` receives on a thread, sends the worker a
keepalive every second, keeps timestamps growing across the worker's new streams (a file's
loop, a camera's reconnection) and paces what it hands out by the packets' timestamps, so a
burst from the worker does not reach the browser as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gridwatch.ingest.packet_tap import EncodedPacket, StreamDescription
from gridwatch.web.views import LiveVideo

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
MAX_TRANSCODE_WIDTH = 1280
KEEPALIVE_S = 1.0
FIRST_STREAM_TIMEOUT_S = 10.0
MAX_LAG_S = 1.0
"""Items this late against the pacing clock re-anchor it instead of rushing out."""
# A reader far ahead of its consumer means the event loop is stuck: drop, do not hoard.
MAX_QUEUED = 300


class LiveViewError(Exception):
    """A live view that cannot be set up; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the worker said of a camera's stream."""

    codec: str
    profile: str | None
    width: int
    height: int
    b_frames: bool

    @classmethod
    def of(cls, description: StreamDescription) -> StreamInfo:
        return cls(description.codec, description.profile, description.width,
                   description.height, description.b_frames)

    def passthrough_refusal(self, browser_h264: bool) -> str | None:
        """Why this stream cannot go to the browser as it is; None when it can."""
        if not browser_h264:
            return "the browser does not offer H.264"
        if self.codec != "h264":
            return f"the camera sends {self.codec}, not H.264"
        if self.b_frames:
            return "the stream has B-frames, which WebRTC cannot carry"
        return None

    def to_json(self) -> dict[str, Any]:
        return {"codec": self.codec, "profile": self.profile, "width": self.width,
                "height": self.height, "b_frames": self.b_frames}


def first_description(camera_id: str, video: LiveVideo,
                      timeout: float = FIRST_STREAM_TIMEOUT_S) -> StreamDescription:
    """Wait (blocking) for the worker to describe the camera's stream, keeping it alive."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            video.keepalive()
            message = video.receive(min(left, KEEPALIVE_S))
        except (EOFError, OSError):
            raise LiveViewError(502, f"camera {camera_id}: its worker ended the live "
                                     "video before it started") from None
        if isinstance(message, StreamDescription):
            return message
    raise LiveViewError(504, f"camera {camera_id}: its worker sent no video within "
                             f"{timeout:g} s (is the camera online?)")


class WorkerTrack(MediaStreamTrack):
    """One camera's live video from its worker, as packets or frames for aiortc.

    `passthrough` hands out H.264 access units for aiortc to packetise as they are;
    otherwise decoded frames for aiortc to encode.
    """

    kind = "video"

    def __init__(self, camera_id: str, video: LiveVideo, description: StreamDescription,
                 passthrough: bool) -> None:
        super().__init__()
        self.camera_id = camera_id
        self.passthrough = passthrough
        self.packets = 0
        self.frames = 0
        self._video = video
        self._description = description
        self._decoder: av.VideoCodecContext | None = None
        self._queue: asyncio.Queue[av.Packet | av.VideoFrame | None] = asyncio.Queue()
        self._event_loop = asyncio.get_running_loop()
        self._quit = threading.Event()
        self._offset = 0.0
        self._first: float | None = None
        self._last = 0.0
        self._anchor: float | None = None
        self._resync = False
        self._thread: threading.Thread | None = None

    async def recv(self) -> av.Packet | av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._thread is None:
            # Hand out from the first request on, not from the answer: what arrived while
            # the connection was being set up would reach the browser late, as a burst.
            self._thread = threading.Thread(target=self._run, name=f"live-{self.camera_id}",
                                            daemon=True)
            self._thread.start()
        item = await self._queue.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        if isinstance(item, av.Packet):
            self.packets += 1
        else:
            self.frames += 1
        return item

    def stop(self) -> None:
        super().stop()
        self._quit.set()
        if self._thread is None:
            self._video.close()

    def _put(self, item: av.Packet | av.VideoFrame | None) -> bool:
        if item is not None and self._queue.qsize() > MAX_QUEUED:
            return False
        with contextlib.suppress(RuntimeError):
            self._event_loop.call_soon_threadsafe(self._queue.put_nowait, item)
        return True

    def _run(self) -> None:
        alive_at = 0.0
        try:
            while not self._quit.is_set():
                if time.monotonic() - alive_at >= KEEPALIVE_S:
                    self._video.keepalive()
                    alive_at = time.monotonic()
                message = self._video.receive(KEEPALIVE_S / 4)
                if isinstance(message, StreamDescription):
                    self._new_stream(message)
                elif isinstance(message, EncodedPacket):
                    self._handle(message)
        except (EOFError, OSError) as exc:
            if not self._quit.is_set():
                log.warning("live view %s: the worker ended the stream (%s)", self.camera_id,
                            type(exc).__name__)
        finally:
            self._video.close()
            self._put(None)

    def _new_stream(self, description: StreamDescription) -> None:
        """The worker started a new stream: continue one frame after where the last ended."""
        step = 1 / float(description.rate or 25)
        if self._first is not None:
            self._offset = self._last + step
        self._first = None
        self._description = description
        self._decoder = None

    def _handle(self, packet: EncodedPacket) -> None:
        description = self._description
        stamp = packet.stamp()
        if stamp is None:
            return
        if self.passthrough:
            if self._resync and not packet.keyframe:
                return
            out = av.Packet(packet.data)
            out.is_keyframe = packet.keyframe
            if self._emit(float(stamp * description.time_base), out):
                self._resync = False
            else:
                # A dropped access unit breaks every picture up to the next keyframe.
                self._resync = True
            return
        for frame in self._decode(packet, description):
            if frame.pts is None or frame.time_base is None:
                continue
            self._emit(float(frame.pts * frame.time_base), _scaled(frame))

    def _decode(self, packet: EncodedPacket,
                description: StreamDescription) -> list[av.VideoFrame]:
        if self._decoder is None:
            decoder = cast(av.VideoCodecContext, av.CodecContext.create(description.codec, "r"))
            if description.extradata:
                decoder.extradata = description.extradata
            self._decoder = decoder
        data = av.Packet(packet.data)
        data.pts, data.dts = packet.pts, packet.dts
        data.time_base = description.time_base
        try:
            return self._decoder.decode(data)
        except av.FFmpegError:
            return []

    def _emit(self, media_t: float, item: av.Packet | av.VideoFrame) -> bool:
        """Hand `item` out when its time comes; False when the consumer fell behind."""
        if self._first is None:
            self._first = media_t
        t = self._offset + media_t - self._first
        self._last = max(self._last, t)
        now = time.monotonic()
        if self._anchor is None or now - (self._anchor + t) > MAX_LAG_S:
            self._anchor = now - t
        delay = self._anchor + t - now
        if delay > 0 and self._quit.wait(delay):
            return True
        item.pts = round(t * VIDEO_CLOCK)
        item.time_base = VIDEO_TIME_BASE
        return self._put(item)


def _scaled(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.width <= MAX_TRANSCODE_WIDTH:
        return frame
    height = round(frame.height * MAX_TRANSCODE_WIDTH / frame.width) // 2 * 2
    return frame.reformat(width=MAX_TRANSCODE_WIDTH, height=height)


class KeyframeGate(MediaStreamTrack):
    """A viewer's copy of a passed-through stream, starting at its next keyframe.

    A browser that joins mid-GOP cannot decode until a keyframe anyway; sending it the
    P-frames before only wastes the link and shows decoder errors.
    """

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self._open = False

    async def recv(self) -> av.Packet | av.VideoFrame:
        while True:
            item = cast(av.Packet | av.VideoFrame, await self.source.recv())
            if self._open or not isinstance(item, av.Packet) or item.is_keyframe:
                self._open = True
                return item

    def stop(self) -> None:
        super().stop()
        self.source.stop()
