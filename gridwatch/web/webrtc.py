"""Live view of a camera in the console over WebRTC (aiortc), with its detections alongside.

The video comes from the worker that holds the camera (`LiveSources.open_live`), never from
a connection of this process. The camera's own H.264 is passed through without re-encoding
whenever the browser offers H.264 and the stream has no B-frames
(`gridwatch.web.live_video`). Other streams (B-frames, another codec, a browser without
H.264) are decoded here and re-encoded by aiortc, which costs about half a core for 720p30;
the console says which of the two it got.

One stream from the worker per camera and mode is shared by every viewer through aiortc's
`MediaRelay`, and stopped when the last viewer leaves. The browser opens a data channel;
the camera's analysis results (boxes in analysis-frame pixels, with the frame's time and
size) are sent on it as they are produced, and the page draws them over the video.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from gridwatch.web.api.schemas import LiveAnswer
from gridwatch.web.auth import CurrentUser
from gridwatch.web.live_video import (
    KeyframeGate,
    LiveViewError,
    StreamInfo,
    WorkerTrack,
    first_description,
)
from gridwatch.web.views import LiveSources

log = logging.getLogger(__name__)

MAX_SESSIONS = 16


class LiveCamera(Protocol):
    """What the live view needs from a camera (`gridwatch.node.cameras.CameraStatus`)."""

    last_result: dict[str, Any] | None

    def on_result(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]: ...


@dataclass(frozen=True, slots=True)
class CameraSource:
    """The camera a live view shows, the zones to draw over it and where its analysis
    results come from."""

    camera_id: str
    grid_cell: str | None
    zones: list[dict[str, Any]]
    pipeline: LiveCamera | None


@dataclass(eq=False)
class _Broadcast:
    track: WorkerTrack
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
    """The live-view sessions of one service: signalling, shared streams, metadata."""

    def __init__(self, sources: LiveSources, max_sessions: int = MAX_SESSIONS) -> None:
        self.sources = sources
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
        """The camera's running stream for this mode, or a new one from its worker."""
        async with self._lock:
            camera_id = source.camera_id
            running = next((b for (cam, _), b in self._broadcasts.items()
                            if cam == camera_id and b.track.readyState == "live"), None)
            broadcast = None
            if running is not None:
                passthrough = running.info.passthrough_refusal(browser_h264) is None
                broadcast = self._broadcasts.get((camera_id, passthrough))
            if broadcast is None or broadcast.track.readyState != "live":
                broadcast = await self._open(camera_id, browser_h264)
            broadcast.viewers += 1
            return broadcast

    async def _open(self, camera_id: str, browser_h264: bool) -> _Broadcast:
        """A new stream of the camera from its worker (which waits for a keyframe)."""
        try:
            video = self.sources.open_live(camera_id)
        except ConnectionError as exc:
            raise LiveViewError(503, str(exc)) from None
        try:
            description = await asyncio.to_thread(first_description, camera_id, video)
        except BaseException:
            video.close()
            raise
        info = StreamInfo.of(description)
        passthrough = info.passthrough_refusal(browser_h264) is None
        broadcast = _Broadcast(WorkerTrack(camera_id, video, description, passthrough),
                               MediaRelay(), info)
        self._broadcasts[(camera_id, passthrough)] = broadcast
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
        """Each running stream: how many watch it, and what it handed to aiortc (H.264
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


def camera_source(camera: Any, pipeline: LiveCamera | None) -> CameraSource:
    """The live-view source of a configured camera (`gridwatch.settings.CameraConfig`)."""
    zones = [{"id": z.id, "name": z.name, "polygon": z.polygon} for z in camera.zones]
    return CameraSource(camera.id, camera.grid_cell, zones, pipeline)


class OfferRequest(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000, description="The browser's SDP offer")
    type: str = Field(default="offer", description="Always 'offer'")


class CameraLookup(Protocol):
    """What the routes need from the service (`gridwatch.web.views.Cameras`)."""

    def camera(self, camera_id: str) -> Any: ...


def router(views: LiveViews, service: CameraLookup) -> APIRouter:
    """Signalling for the live view: POST an offer, get the answer; DELETE to hang up."""
    routes = APIRouter(prefix="/api/live", tags=["live"])

    @routes.post("/cameras/{camera_id}/webrtc", response_model=LiveAnswer, responses={
        404: {"description": "No such camera in scope"},
        422: {"description": "Not a usable offer"},
        502: {"description": "The camera's worker ended the stream before it started"},
        503: {"description": "Too many live views open, or the camera's worker is down"},
        504: {"description": "The camera's worker sent no video in time"}})
    async def offer(camera_id: str, body: OfferRequest, user: CurrentUser) -> dict[str, Any]:
        """Answer a WebRTC offer (one video section, receive-only, and a data channel for the
        detections). The answer says whether the camera's H.264 is passed through or
        re-encoded, and why."""
        pipeline = service.camera(camera_id)
        if pipeline is None or not user.can_see(pipeline.camera.grid_cell):
            raise HTTPException(404, f"camera {camera_id!r} not found")
        try:
            source = camera_source(pipeline.camera, pipeline)
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
