"""Serve an ASGI app on a free port of 127.0.0.1 and read its Server-Sent Events.

The server is uvicorn in a thread of the test process, so a test can reach the objects
behind the app; the event client parses `text/event-stream` as a browser's EventSource
does and queues the events with the time they arrived.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """An ASGI app served by uvicorn on a free port of 127.0.0.1, in a thread."""

    base: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def serve(app: Any) -> Served:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="console-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return Served(f"http://127.0.0.1:{port}", server, thread)


@dataclass(frozen=True)
class SseEvent:
    kind: str
    data: dict[str, Any]
    id: str | None
    received: float


class EventStream:
    """A client of a `text/event-stream` route, read on a thread; events wait in a queue."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[SseEvent] = queue.Queue()
        self._pending: list[SseEvent] = []
        self.status: int | None = None
        self._response: httpx.Response | None = None
        self._opened = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._read, args=(url, headers or {}),
                                        daemon=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise RuntimeError(f"no answer from {url}")

    def _read(self, url: str, headers: dict[str, str]) -> None:
        kind, data, event_id = "message", [], None
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self._response = response
                self.status = response.status_code
                self._opened.set()
                for line in response.iter_lines():
                    if line == "":
                        if data:
                            self.events.put(SseEvent(kind, json.loads("\n".join(data)),
                                                     event_id, time.time()))
                        kind, data, event_id = "message", [], None
                    elif line.startswith(":"):
                        continue
                    else:
                        field, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if field == "event":
                            kind = value
                        elif field == "data":
                            data.append(value)
                        elif field == "id":
                            event_id = value
        except (httpx.HTTPError, httpx.StreamError, OSError):
            log.debug("event stream %s ended", url)
        finally:
            self._opened.set()

    def next(self, kind: str, timeout: float = 5.0,
             where: Callable[[SseEvent], bool] = lambda _e: True) -> SseEvent:
        """The first event of `kind` that satisfies `where`; other events stay queued."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._pending):
                if event.kind == kind and where(event):
                    return self._pending.pop(index)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind!r} event within {timeout} s")
            try:
                self._pending.append(self.events.get(timeout=left))
            except queue.Empty:
                continue

    def drain(self, seconds: float) -> list[SseEvent]:
        """Every event still queued plus those that arrive in the next `seconds`."""
        out, self._pending = self._pending, []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.events.get(timeout=left))
            except queue.Empty:
                break
        return out

    def ended(self, timeout: float) -> bool:
        """Whether the server ended the stream within `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """Hang up: closing the response ends the blocked read of the reader thread."""
        if self._response is not None:
            self._response.close()
        self._thread.join(timeout=5)
        self._client.close()
