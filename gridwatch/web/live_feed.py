"""Pushed events for the console: incident changes and camera status over Server-Sent Events.

The console must show a new incident within 2 s without polling, so every committed change
(`IncidentStore.subscribe` fires after the commit, from whatever thread made it) is copied to
each open connection's queue at once. Every incident event gets a sequence number and is
kept in a short history: a browser that reconnects sends `Last-Event-ID` and is replayed
what it missed, or told to reload its list when the gap is older than the history.
Camera status is a snapshot sent every second while someone listens; it is not replayed.
The camera wall's pictures are the previews the camera workers encode, served as they are:
a viewer never costs a decode. A request for a picture is what makes a worker encode that
camera's previews about once a second (for `workers.preview_demand_s`, renewed by the next
requests); nobody looking, it encodes one every `workers.preview_idle_interval_s`, which
the first request after a while gets (its age is in `X-Frame-Wall`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from gridwatch.alerts.store.incident_store import IncidentStore
from gridwatch.alerts.store.views import Incident
from gridwatch.ingest.state import CameraHealth
from gridwatch.web.auth import SESSION_COOKIE, CurrentUser, accounts_of
from gridwatch.web.views import Cameras

log = logging.getLogger(__name__)

HISTORY_SIZE = 1000
QUEUE_SIZE = 500
CAMERA_INTERVAL_S = 1.0
RECHECK_S = 30.0
RETRY_MS = 1000

Visible = Callable[[str | None], bool]
"""Whether a grid cell (None: camera outside every cell) is in the viewer's scope."""


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One incident change as sent; `at` is the server's Unix time when it was published."""

    epoch: str
    seq: int
    grid_cell: str | None
    data: dict[str, Any]
    at: float

    def encode(self) -> bytes:
        body = json.dumps({**self.data, "seq": self.seq, "sent_at": self.at})
        return f"id: {self.epoch}-{self.seq}\nevent: incident\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class _Listener:
    visible: Visible
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[FeedEvent | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def offer(self, event: FeedEvent | None) -> None:
        """Runs on the listener's loop; a listener that cannot keep up is dropped, and its
        browser reconnects and catches up from the history."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("live feed: a console connection fell %d events behind; closing it",
                        QUEUE_SIZE)
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class LiveFeed:
    """Fans committed incident changes and camera status out to console connections.

    `cameras` returns the cameras' health (`ServiceView.camera_health`); it is called from
    a worker thread once a second while at least one connection is open.
    """

    def __init__(self, store: IncidentStore, cameras: Callable[[], list[CameraHealth]],
                 *, camera_interval_s: float = CAMERA_INTERVAL_S,
                 recheck_s: float = RECHECK_S) -> None:
        self.store = store
        self.cameras = cameras
        self.camera_interval_s = camera_interval_s
        self.recheck_s = recheck_s
        # Event ids are "<epoch>-<seq>": after a restart the sequence starts again, and the
        # epoch tells a reconnecting browser that its last id means nothing here any more.
        self.epoch = secrets.token_hex(4)
        self._history: deque[FeedEvent] = deque(maxlen=HISTORY_SIZE)
        self._next_seq = 1
        self._lock = threading.Lock()
        self._listeners: set[_Listener] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.store.subscribe(self.publish)

    def close(self) -> None:
        """Stop hearing the store and end every open stream."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._closed.set()
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            _call_soon(listener, None)

    def publish(self, incident: Incident) -> None:
        """The store's subscriber: runs in the committing thread, so it only hands over."""
        data = {"change": "opened" if incident.version == 1 else "changed",
                "incident": incident.to_api()}
        with self._lock:
            event = FeedEvent(self.epoch, self._next_seq, incident.grid_cell, data, time.time())
            self._next_seq += 1
            self._history.append(event)
            listeners = [li for li in self._listeners if li.visible(event.grid_cell)]
        for listener in listeners:
            _call_soon(listener, event)

    def _attach(self, visible: Visible, last_event_id: str | None
                ) -> tuple[_Listener, list[FeedEvent], bool]:
        """Register a listener and take the history it missed under one lock, so that no
        event falls between the replay and the live queue. The flag says the browser missed
        more than the history holds and must reload its list."""
        listener = _Listener(visible, asyncio.get_running_loop())
        with self._lock:
            self._listeners.add(listener)
            if not last_event_id:
                return listener, [], False
            epoch, _, seq = last_event_id.strip().partition("-")
            if epoch != self.epoch or not seq.isdigit() or int(seq) >= self._next_seq:
                return listener, [], True
            last_id = int(seq)
            missed = [e for e in self._history if e.seq > last_id and visible(e.grid_cell)]
            oldest = self._history[0].seq if self._history else self._next_seq
        return listener, missed, last_id + 1 < oldest

    def _detach(self, listener: _Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    async def stream(self, visible: Visible, last_event_id: str | None = None,
                     still_allowed: Callable[[], bool] | None = None) -> AsyncIterator[bytes]:
        """The body of one `text/event-stream` response for a viewer of `visible` cells.

        `still_allowed` is asked every `recheck_s` (in a worker thread): a stream whose
        session was ended, or whose user lost the scope it was opened with, stops, and the
        browser's reconnection then meets the login.
        """
        listener, missed, gap = self._attach(visible, last_event_id)
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            if gap:
                yield b"event: reset\ndata: {}\n\n"
            for event in missed:
                yield event.encode()
            yield self._camera_message(visible, await self._camera_snapshot())
            async for chunk in self._follow(listener, still_allowed):
                yield chunk
        finally:
            self._detach(listener)

    async def _follow(self, listener: _Listener, still_allowed: Callable[[], bool] | None
                      ) -> AsyncIterator[bytes]:
        """Incident events as they come; between them, the camera snapshot every interval
        (which also keeps proxies from closing an idle connection)."""
        next_cameras = time.monotonic() + self.camera_interval_s
        next_check = time.monotonic() + self.recheck_s
        while not self._closed.is_set():
            if still_allowed is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.recheck_s
                if not await asyncio.to_thread(still_allowed):
                    log.info("live feed: a console's session ended; closing its stream")
                    return
            timeout = max(0.0, next_cameras - time.monotonic())
            try:
                event = await asyncio.wait_for(listener.queue.get(), timeout)
            except TimeoutError:
                next_cameras = time.monotonic() + self.camera_interval_s
                yield self._camera_message(listener.visible, await self._camera_snapshot())
                continue
            if event is None:
                return
            yield event.encode()

    async def _camera_snapshot(self) -> list[CameraHealth]:
        try:
            return await asyncio.to_thread(self.cameras)
        except Exception:
            log.exception("live feed: could not read camera health")
            return []

    @staticmethod
    def _camera_message(visible: Visible, cameras: list[CameraHealth]) -> bytes:
        shown = [camera_summary(c) for c in cameras if visible(c.grid_cell)]
        body = json.dumps({"cameras": shown, "sent_at": time.time()})
        return f"event: cameras\ndata: {body}\n\n".encode()


def camera_summary(health: CameraHealth) -> dict[str, Any]:
    """What a camera wall tile shows of a camera's health."""
    counters = health.counters
    analysis = health.last_analysis
    return {
        "id": health.id,
        "name": health.name,
        "grid_cell": health.grid_cell,
        "state": health.state.value,
        "reason": health.reason,
        "since": health.since,
        "last_frame_age_s": counters.last_frame_age_s,
        "frames_decoded": counters.frames_decoded,
        "frames_dropped": counters.frames_dropped,
        "reconnects": counters.reconnects,
        "bitrate_bps": counters.bitrate_bps,
        "analysed": counters.analysed,
        "detections": len(analysis.detections) if analysis is not None else 0,
        "preview_seq": health.preview.seq,
        "preview_wall": health.preview.wall,
    }


def _call_soon(listener: _Listener, event: FeedEvent | None) -> None:
    try:
        listener.loop.call_soon_threadsafe(listener.offer, event)
    except RuntimeError:
        log.debug("live feed: listener's event loop is closed")


def router(feed: LiveFeed, service: Cameras) -> APIRouter:
    """`/api/live/events` (the console's event stream) and the camera wall's pictures."""
    routes = APIRouter(prefix="/api/live", tags=["live"])

    @routes.get("/events", response_class=StreamingResponse, responses={
        200: {"content": {"text/event-stream": {}},
              "description": "`incident` events (id, JSON with `change`, `incident`, `seq`, "
                             "`sent_at`), `cameras` snapshots every second, `reset` when the "
                             "list must be reloaded"}})
    async def events(
        request: Request,
        user: CurrentUser,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Server-Sent Events for the user's grid scope; the browser's `EventSource`
        reconnects by itself and sends `Last-Event-ID` to be replayed what it missed."""
        feed.start()
        accounts = accounts_of(request)
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        cookie = request.cookies.get(SESSION_COOKIE, "")

        def still_allowed() -> bool:
            again = (accounts.from_token(bearer.strip()) if scheme.lower() == "bearer"
                     else accounts.from_session(cookie))
            return again is not None and (again.role, again.cells) == (user.role, user.cells)

        return StreamingResponse(
            feed.stream(user.can_see, last_event_id, still_allowed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @routes.get("/cameras/{camera_id}/frame.jpg", response_class=Response, responses={
        200: {"content": {"image/jpeg": {}}},
        404: {"description": "No such camera in scope, or no frame yet"}})
    def frame(camera_id: str, user: CurrentUser) -> Response:
        """The camera's newest picture: asking for it keeps the camera's pictures coming
        about once a second; the first answer after nobody asked for a while can be as old
        as `workers.preview_idle_interval_s` (`X-Frame-Wall` is its Unix time)."""
        camera = service.camera(camera_id)
        if camera is None or not user.can_see(camera.camera.grid_cell):
            raise HTTPException(404, f"camera {camera_id!r} not found")
        service.want_preview(camera_id)
        preview = camera.preview
        jpeg, wall = preview.jpeg, preview.wall
        if jpeg is None:
            raise HTTPException(404, f"camera {camera_id!r} has sent no frame yet")
        return Response(jpeg, media_type="image/jpeg", headers={
            "Cache-Control": "no-store", "X-Frame-Wall": str(wall)})

    return routes
