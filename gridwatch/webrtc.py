"""Live view of a camera in the console over WebRTC (aiortc), with its detections alongside.

The camera's own H.264 is passed through without re-encoding whenever the browser offers
H.264 and the stream has no B-frames: WebRTC has no reordering, and a browser fed B-frames
decodes about two pictures a GOP (measured with Chromium 156: 2 of 90). Other streams (B-frames,
another codec, a browser without H.264) are decoded and re-encoded by aiortc, which costs
about half a core for 720p30; the console says which of the two it got.

One reader per camera and mode is shared by every viewer through aiortc's `MediaRelay`, and
stopped when the last viewer leaves. The browser opens a data channel; the camera's
analysis results (boxes in analysis-frame pixels, with the frame's time and size) are sent
on it as they are produced, and the page draws them over the video.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import av
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription
from av.bitstream import BitStreamFilterContext
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from gridwatch.auth import CurrentUser
from gridwatch.sources import camera_options, resolve_url
from ingest.options import StreamOptions
from ingest.redact import redact

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
MAX_SESSIONS = 16
MAX_TRANSCODE_WIDTH = 1280
RECONNECT_S = 1.0
# A reader far ahead of its consumer means the event loop is stuck: drop, do not hoard.
MAX_QUEUED = 300
LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})


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
    return urlsplit(url).scheme.lower() in LIVE_SCHEMES


def open_stream(url: str, options: StreamOptions) -> av.container.InputContainer:
    """Open a camera's main stream with the same finite timeouts as ingest."""
    if not is_live_url(url):
        return av.open(url)
    container_options = {"allowed_media_types": "video"}
    if urlsplit(url).scheme.lower() in ("rtsp", "rtsps"):
        container_options["rtsp_transport"] = options.transport
    return av.open(url, container_options=container_options,
                   timeout=(options.open_timeout_s, options.read_timeout_s))


def probe(url: str, options: StreamOptions) -> StreamInfo:
    try:
        with open_stream(url, options) as container:
            if not container.streams.video:
                raise LiveViewError(502, f"no video stream in {redact(url)}")
            ctx = container.streams.video[0].codec_context
            return StreamInfo(ctx.name, ctx.profile, ctx.width, ctx.height,
                              bool(ctx.has_b_frames))
    except (av.FFmpegError, OSError) as exc:
        raise LiveViewError(502, f"cannot open {redact(url)}: {exc}") from None


def file_length(container: av.container.InputContainer,
                stream: av.video.stream.VideoStream) -> float | None:
    """Seconds one pass of a looping file lasts, counted as ingest counts it (first to last
    picture plus one frame interval), so that positions agree over many loops."""
    stamps = [p.pts for p in container.demux(stream) if p.pts is not None]
    if not stamps:
        return None
    step = 1 / float(stream.average_rate or 25)
    return float((max(stamps) - min(stamps)) * stream.time_base) + step


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

    def __init__(self, camera_id: str, url: str, options: StreamOptions, passthrough: bool,
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
        self._loop = asyncio.get_running_loop()
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
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
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
        origin = 0.0 if stream.start_time is None else float(stream.start_time * stream.time_base)
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
        container.seek(round((origin + into) / stream.time_base), stream=stream, backward=True)
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
                if frame.pts is None:
                    continue
                if frame.width > MAX_TRANSCODE_WIDTH:
                    scaled = round(frame.height * MAX_TRANSCODE_WIDTH / frame.width) // 2 * 2
                    reformatted = frame.reformat(width=MAX_TRANSCODE_WIDTH, height=scaled)
                    reformatted.pts, reformatted.time_base = frame.pts, frame.time_base
                    frame = reformatted
                yield float(frame.pts * frame.time_base), frame


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
            item = await self.source.recv()
            if self._open or not isinstance(item, av.Packet) or item.is_keyframe:
                self._open = True
                return item

    def stop(self) -> None:
        super().stop()
        self.source.stop()


class LiveCamera(Protocol):
    """What the live view needs from a camera pipeline (`gridwatch.service.CameraPipeline`)."""

    last_result: dict[str, Any] | None

    def on_result(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]: ...


@dataclass(frozen=True, slots=True)
class CameraSource:
    """Where a camera's live view reads from, and the zones to draw over it."""

    camera_id: str
    url: str
    options: StreamOptions
    grid_cell: str | None
    zones: list[dict[str, Any]]
    pipeline: LiveCamera | None

    def analysis_position(self) -> float | None:
        """Where the analysis is now, in its media seconds (None before its first frame)."""
        result = self.pipeline.last_result if self.pipeline is not None else None
        if not result:
            return None
        return result["t"] + max(0.0, time.time() - result["wall"])


@dataclass(eq=False)
class _Broadcast:
    track: CameraTrack
    relay: MediaRelay
    info: StreamInfo
    viewers: int = 0


@dataclass(eq=False)
class Session:
    id: str
    camera_id: str
    owner: str
    pc: RTCPeerConnection
    mode: str
    codec: str | None
    reason: str | None
    info: StreamInfo
    viewer: MediaStreamTrack | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"session": self.id, "camera": self.camera_id, "mode": self.mode,
                "codec": self.codec, "reason": self.reason, "source": self.info.to_json()}


class LiveViews:
    """The live-view sessions of one service: signalling, shared readers, metadata."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self.sessions: dict[str, Session] = {}
        self._broadcasts: dict[tuple[str, bool], _Broadcast] = {}
        self._lock = asyncio.Lock()

    async def answer(self, source: CameraSource, offer: RTCSessionDescription,
                     owner: str = "") -> dict[str, Any]:
        """Answer a browser's offer for `source`; returns the answer and the session."""
        if offer.type != "offer":
            raise LiveViewError(422, f"type: expected 'offer', got {offer.type!r}")
        if len(self.sessions) >= self.max_sessions:
            raise LiveViewError(503, f"{self.max_sessions} live views are open; close one first")
        try:
            remote = SessionDescription.parse(offer.sdp)
        except (ValueError, IndexError) as exc:
            raise LiveViewError(422, f"sdp: not a session description ({exc})") from None
        if not any(m.kind == "video" for m in remote.media):
            raise LiveViewError(422, "sdp: the offer has no video section")
        browser_h264 = any(c.mimeType.lower() == "video/h264"
                           for m in remote.media if m.kind == "video" for c in m.rtp.codecs)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = Session(secrets.token_urlsafe(12), source.camera_id, owner, pc, "", None, None,
                          StreamInfo("", None, 0, 0, False))
        try:
            await self._setup(session, source, browser_h264, offer)
        except BaseException:
            await self._close(session)
            raise
        self.sessions[session.id] = session
        log.info("live view %s of %s: %s %s%s", session.id, source.camera_id, session.mode,
                 session.codec, f" ({session.reason})" if session.reason else "")
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
                **session.describe()}

    async def _setup(self, session: Session, source: CameraSource, browser_h264: bool,
                     offer: RTCSessionDescription) -> None:
        pc = session.pc
        broadcast = await self._join(source, browser_h264)
        session.info = broadcast.info
        session.cleanups.append(lambda: self._leave(source.camera_id, broadcast))
        proxy = broadcast.relay.subscribe(broadcast.track, buffered=broadcast.track.passthrough)
        session.viewer = KeyframeGate(proxy) if broadcast.track.passthrough else proxy
        session.mode = "passthrough" if broadcast.track.passthrough else "transcode"
        session.reason = broadcast.info.passthrough_refusal(browser_h264)
        # The preference must be set on a transceiver added before the offer is applied,
        # or aiortc answers with its default (VP8) first.
        transceiver = pc.addTransceiver(session.viewer, direction="sendonly")
        transceiver.setCodecPreferences(_codec_preferences(browser_h264))

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self._feed_detections(session, source, channel)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(session.id)

        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        session.codec = _sent_codec(pc.localDescription.sdp, transceiver)

    def _feed_detections(self, session: Session, source: CameraSource,
                         channel: RTCDataChannel) -> None:
        """Send the session description first, then each analysis result as it comes."""
        loop = asyncio.get_running_loop()

        def send(message: dict[str, Any]) -> None:
            if channel.readyState == "open":
                channel.send(json.dumps(message))

        def on_open() -> None:
            send({"type": "info", **session.describe(), "zones": source.zones})

        if channel.readyState == "open":
            on_open()
        else:
            channel.on("open", on_open)
        if source.pipeline is None:
            return

        def on_result(result: dict[str, Any]) -> None:
            message = {"type": "detections", "camera": source.camera_id, "sent_at": time.time(),
                       **result}
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(send, message)

        session.cleanups.append(source.pipeline.on_result(on_result))

    async def _join(self, source: CameraSource, browser_h264: bool) -> _Broadcast:
        """The camera's running reader for this mode, or a new one; a camera already being
        watched is not probed again (opening an RTSP stream takes about half a second)."""
        async with self._lock:
            running = [b for (cam, _), b in self._broadcasts.items() if cam == source.camera_id]
            info = (running[0].info if running
                    else await asyncio.to_thread(probe, source.url, source.options))
            passthrough = info.passthrough_refusal(browser_h264) is None
            key = (source.camera_id, passthrough)
            broadcast = self._broadcasts.get(key)
            if broadcast is None or broadcast.track.readyState != "live":
                track = CameraTrack(source.camera_id, source.url, source.options, passthrough,
                                    source.analysis_position)
                broadcast = _Broadcast(track, MediaRelay(), info)
                self._broadcasts[key] = broadcast
            broadcast.viewers += 1
            return broadcast

    def _leave(self, camera_id: str, broadcast: _Broadcast) -> None:
        broadcast.viewers -= 1
        if broadcast.viewers > 0:
            return
        broadcast.track.stop()
        key = (camera_id, broadcast.track.passthrough)
        if self._broadcasts.get(key) is broadcast:
            del self._broadcasts[key]

    async def close(self, session_id: str) -> bool:
        """End one session; False when it was already gone."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        await self._close(session)
        log.info("live view %s of %s closed", session.id, session.camera_id)
        return True

    async def _close(self, session: Session) -> None:
        cleanups, session.cleanups = session.cleanups, []
        for cleanup in cleanups:
            cleanup()
        if session.viewer is not None:
            session.viewer.stop()
        await session.pc.close()

    def stats(self) -> list[dict[str, Any]]:
        """Each running reader: how many watch it, and what it handed to aiortc (H.264
        packets sent as they are, or decoded frames aiortc had to encode)."""
        return [{"camera": camera, "mode": "passthrough" if passthrough else "transcode",
                 "viewers": b.viewers, "packets": b.track.packets, "frames": b.track.frames}
                for (camera, passthrough), b in self._broadcasts.items()]

    async def close_all(self) -> None:
        for session_id in list(self.sessions):
            await self.close(session_id)


def _codec_preferences(browser_h264: bool) -> list[Any]:
    """H.264 first (what cameras send, and cheaper to encode than VP8), VP8 as a fallback."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"]
    rest = [c for c in codecs if c.mimeType.lower() != "video/h264"]
    return (h264 + rest) if browser_h264 else rest


def _sent_codec(answer_sdp: str, transceiver: RTCRtpTransceiver) -> str | None:
    """The codec the answer puts first for the video section: the one that is sent."""
    parsed = SessionDescription.parse(answer_sdp)
    for media in parsed.media:
        if media.kind == "video" and media.rtp.codecs and media.rtp.muxId == transceiver.mid:
            return media.rtp.codecs[0].mimeType.split("/", 1)[1]
    return None


def camera_source(camera: Any, pipeline: LiveCamera | None, resolve: Callable[[str], str],
                  options: StreamOptions) -> CameraSource:
    """The live-view source of a configured camera (`gridwatch.config.CameraConfig`)."""
    url = resolve(camera.url)
    if not is_live_url(url) and not Path(url).exists():
        raise LiveViewError(404, f"camera {camera.id}: stream file {url} is missing")
    zones = [{"id": z.id, "name": z.name, "polygon": z.polygon} for z in camera.zones]
    return CameraSource(camera.id, url, options, camera.grid_cell, zones, pipeline)


class OfferRequest(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000, description="The browser's SDP offer")
    type: str = Field(default="offer", description="Always 'offer'")


class CameraLookup(Protocol):
    """What the routes need from the service (`gridwatch.service.Service`)."""

    def pipeline(self, camera_id: str) -> Any: ...


def router(views: LiveViews, service: CameraLookup) -> APIRouter:
    """Signalling for the live view: POST an offer, get the answer; DELETE to hang up."""
    routes = APIRouter(prefix="/api/live", tags=["live"])

    @routes.post("/cameras/{camera_id}/webrtc", responses={
        404: {"description": "No such camera in scope"},
        422: {"description": "Not a usable offer"},
        502: {"description": "The camera's stream cannot be opened"},
        503: {"description": "Too many live views open"}})
    async def offer(camera_id: str, body: OfferRequest, user: CurrentUser) -> dict[str, Any]:
        """Answer a WebRTC offer (one video section, receive-only, and a data channel for the
        detections). The answer says whether the camera's H.264 is passed through or
        re-encoded, and why."""
        pipeline = service.pipeline(camera_id)
        if pipeline is None or not user.can_see(pipeline.camera.grid_cell):
            raise HTTPException(404, f"camera {camera_id!r} not found")
        try:
            source = camera_source(pipeline.camera, pipeline, resolve_url,
                                   camera_options(pipeline.camera))
            return await views.answer(source, RTCSessionDescription(body.sdp, body.type),
                                      owner=user.username)
        except LiveViewError as err:
            raise HTTPException(err.status, str(err)) from None

    @routes.delete("/webrtc/{session_id}", status_code=204,
                   responses={404: {"description": "No such live view of yours"}})
    async def hang_up(session_id: str, user: CurrentUser) -> None:
        session = views.sessions.get(session_id)
        if session is None or session.owner != user.username:
            raise HTTPException(404, f"live view {session_id!r} not found")
        await views.close(session_id)

    return routes
