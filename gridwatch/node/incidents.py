"""The workers' events and clips, folded into incidents off the thread that receives them."""

from __future__ import annotations

import logging
import queue
import threading

from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.detectors.events import Event
from gridwatch.worker.clips import Clip

log = logging.getLogger(__name__)


class IncidentWriter:
    """Folds the workers' events (and finished clips) into incidents on one thread, in the
    order they arrived, so that the thread receiving messages never waits on the database."""

    def __init__(self, manager: IncidentManager) -> None:
        self.manager = manager
        self._queue: queue.Queue[Event | Clip | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="incidents", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: Event | Clip) -> None:
        self._queue.put(item)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop."""
        if self._thread.ident is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if isinstance(item, Clip):
                    self.manager.attach_clip_for(item.key, item.event_wall, item.path)
                else:
                    self.manager.handle(item)
            except Exception:
                log.exception("could not store %r", _describe(item))


def _describe(item: Event | Clip) -> str:
    if isinstance(item, Clip):
        return f"clip {item.path} of {item.key}"
    return f"{item.phase} event of {item.camera}/{item.zone}/{item.kind}"
