"""Camera streams as WebRTC tracks: H.264 passed through as it is, or decoded for aiortc.

WebRTC has no picture reordering: Chromium 156 fed a stream with B-frames decoded about two
pictures a GOP (2 of 90), so only H.264 without B-frames is passed through; anything else is
decoded here and encoded by aiortc. `CameraTrack` reads the camera's main stream on a thread
(demux only when passing through), keeps timestamps growing across file loops and camera
reconnections, and paces files in real time from where the camera's analysis is.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.bitstream import BitStreamFilterContext

from gridwatch.common.redact import redact
from gridwatch.settings.stream import NETWORK_SCHEMES, StreamSettings

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
MAX_TRANSCODE_WIDTH = 1280
RECONNECT_S = 1.0
# A reader far ahead of its consumer means the event loop is stuck: drop, do not hoard.
MAX_QUEUED = 300


class LiveViewError(Exception):
    """A live view that cannot be set up; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the first look at a camera's main stream found."""

    codec: str
    profile: str | None
    width: int
    height: int
    b_frames: bool

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


def is_live_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in NETWORK_SCHEMES


def open_stream(url: str, options: StreamSettings) -> av.container.InputContainer:
    """Open a camera's main stream with the same finite timeouts as ingest."""
    if not is_live_url(url):
        return av.open(url)
    container_options = {"allowed_media_types": "video"}
    if urlsplit(url).scheme.lower() in ("rtsp", "rtsps"):
        container_options["rtsp_transport"] = options.transport
    return av.open(url, container_options=container_options,
                   timeout=(options.open_timeout_s, options.read_timeout_s))


def probe(url: str, options: StreamSettings) -> StreamInfo:
    try:
        with open_stream(url, options) as container:
            if not container.streams.video:
                raise LiveViewError(502, f"no video stream in {redact(url)}")
            ctx = container.streams.video[0].codec_context
            return StreamInfo(ctx.name, ctx.profile, ctx.width, ctx.height,
                              bool(ctx.has_b_frames))
    except (av.FFmpegError, OSError) as exc:
        raise LiveViewError(502, f"cannot open {redact(url)}: {exc}") from None


def time_base(stream: av.video.stream.VideoStream) -> fractions.Fraction:
    """The stream's time base; FFmpeg sets one on every opened stream."""
    if stream.time_base is None:
        raise ValueError("stream without a time base")
    return stream.time_base


def file_length(container: av.container.InputContainer,
                stream: av.video.stream.VideoStream) -> float | None:
    """Seconds one pass of a looping file lasts, counted as ingest counts it (first to last
    picture plus one frame interval), so that positions agree over many loops."""
    stamps = [p.pts for p in container.demux(stream) if p.pts is not None]
    if not stamps:
        return None
    step = 1 / float(stream.average_rate or 25)
    return float((max(stamps) - min(stamps)) * time_base(stream)) + step


def _annexb_filter(stream: av.video.stream.VideoStream) -> BitStreamFilterContext | None:
    """WebRTC wants Annex B with SPS/PPS before each keyframe.

    MP4 stores length-prefixed NAL units with SPS/PPS in the header (converted by
    h264_mp4toannexb); RTSP delivers Annex B but may carry SPS/PPS only in the SDP
    (dump_extra repeats them before keyframes).
    """
    extradata = stream.codec_context.extradata
    if not extradata:
        return None
    if extradata[0] == 1:
        return BitStreamFilterContext("h264_mp4toannexb", stream)
    return BitStreamFilterContext("dump_extra=freq=keyframe", stream)


class CameraTrack(MediaStreamTrack):
    """Reads one camera's main stream on a thread and hands out packets or frames.

    `passthrough` yields H.264 access units (Annex B) for aiortc to packetise as they are;
    otherwise decoded frames for aiortc to encode. Timestamps only grow: a file played in a
    loop, or a camera that reconnects, continues where it left off. Live streams arrive at
    their own pace; files are paced in real time and start where the camera's analysis is
    (`position()`, in the analysis' media seconds), so that the boxes match the picture.
    """

    kind = "video"

    def __init__(self, camera_id: str, url: str, options: StreamSettings, passthrough: bool,
                 position: Callable[[], float | None] | None = None) -> None:
        super().__init__()
        self.camera_id = camera_id
        self.url = url
        self.options = options
        self.passthrough = passthrough
        self.live = is_live_url(url)
        self.packets = 0
        self.frames = 0
        self._position = position
        self._queue: asyncio.Queue[av.Packet | av.VideoFrame | None] = asyncio.Queue()
        self._event_loop = asyncio.get_running_loop()
        self._quit = threading.Event()
        self._offset = 0.0
        self._anchor: float | None = None
        self._resync = False
        self._thread: threading.Thread | None = None

    async def recv(self) -> av.Packet | av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._thread is None:
            # Read from the first request on, not from the answer: what was read while the
            # connection was being set up would arrive late, as a burst.
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

    def _put(self, item: av.Packet | av.VideoFrame | None) -> bool:
        if item is not None and self._queue.qsize() > MAX_QUEUED:
            return False
        with contextlib.suppress(RuntimeError):
            self._event_loop.call_soon_threadsafe(self._queue.put_nowait, item)
        return True

    def _run(self) -> None:
        try:
            while not self._quit.is_set():
                try:
                    with open_stream(self.url, self.options) as container:
                        played = self._play(container)
                    if not played and not self.live:
                        log.warning("live view %s: %s has no picture to send", self.camera_id,
                                    redact(self.url))
                        return
                except (av.FFmpegError, OSError) as exc:
                    log.warning("live view %s: %s: %s", self.camera_id, redact(self.url), exc)
                    if not self.live:
                        return
                if self.live:
                    self._quit.wait(RECONNECT_S)
                elif not self.options.loop:
                    return
        finally:
            self._put(None)

    def _play(self, container: av.container.InputContainer) -> int:
        """One pass over an opened stream; moves `_offset` past its end for the next one.
        Returns how many pictures it read."""
        stream = container.streams.video[0]
        step = 1 / float(stream.average_rate or 25)
        origin = (0.0 if stream.start_time is None
                  else float(stream.start_time * time_base(stream)))
        skip_until = self._seek_to_analysis(container, stream, origin)
        first: float | None = None
        last = self._offset
        read = 0
        for media_t, item in self._items(container, stream):
            read += 1
            if self._quit.is_set():
                return read
            if first is None:
                # A live stream's clock starts anywhere; a file's at its first timestamp.
                first = media_t if self.live else origin
            t = self._offset + media_t - first
            last = max(last, t)
            if self._anchor is None:
                self._anchor = time.monotonic() - t
            if not self.live:
                delay = self._anchor + t - time.monotonic()
                if delay > 0 and self._quit.wait(delay):
                    return read
            if t < skip_until and not isinstance(item, av.Packet):
                continue
            if self._resync and isinstance(item, av.Packet) and not item.is_keyframe:
                continue
            item.pts = round(t * VIDEO_CLOCK)
            item.time_base = VIDEO_TIME_BASE
            # A dropped access unit breaks every picture up to the next keyframe.
            self._resync = not self._put(item) and self.passthrough
        self._offset = last + step
        return read

    def _seek_to_analysis(self, container: av.container.InputContainer,
                          stream: av.video.stream.VideoStream, origin: float) -> float:
        """Start a file where the analysis is, on the keyframe before it; returns the
        analysis' time there (earlier pictures are sent at once, or dropped if decoded)."""
        if self.live or self._anchor is not None or self._position is None:
            return 0.0
        now_t = self._position()
        if now_t is None:
            return 0.0
        length = file_length(container, stream)
        if length is None or length <= 0:
            container.seek(0)
            return 0.0
        into = now_t % length
        self._offset = now_t - into
        self._anchor = time.monotonic() - now_t
        container.seek(round((origin + into) / time_base(stream)), stream=stream, backward=True)
        return now_t

    def _items(self, container: av.container.InputContainer,
               stream: av.video.stream.VideoStream
               ) -> Iterator[tuple[float, av.Packet | av.VideoFrame]]:
        """(media seconds, packet or frame) in the order they are to be sent."""
        annexb = _annexb_filter(stream) if self.passthrough else None
        waiting_for_keyframe = True
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if self.passthrough:
                for out in annexb.filter(packet) if annexb is not None else [packet]:
                    waiting_for_keyframe = waiting_for_keyframe and not out.is_keyframe
                    stamp = out.pts if out.pts is not None else out.dts
                    if waiting_for_keyframe or stamp is None:
                        continue
                    yield float(stamp * out.time_base), out
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                if frame.pts is None or frame.time_base is None:
                    continue
                seconds = float(frame.pts * frame.time_base)
                if frame.width > MAX_TRANSCODE_WIDTH:
                    scaled = round(frame.height * MAX_TRANSCODE_WIDTH / frame.width) // 2 * 2
                    reformatted = frame.reformat(width=MAX_TRANSCODE_WIDTH, height=scaled)
                    reformatted.pts, reformatted.time_base = frame.pts, frame.time_base
                    frame = reformatted
                yield seconds, frame


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
