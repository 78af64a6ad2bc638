"""What the web side reads from the node it serves, as small protocols.

The API, the console, the live feed and the metrics depend on these and on the typed records
they return (`gridwatch.ingest.state.CameraHealth`), never on the composition root
(`gridwatch.service`) or on the main process's camera state (`gridwatch.node`): the running
service satisfies them, and so does a test's small stand-in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gridwatch.accounts.store import Accounts
from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.grid import Grid
from gridwatch.alerts.store.incident_store import IncidentStore
from gridwatch.ingest.packet_tap import EncodedPacket, StreamDescription
from gridwatch.ingest.state import CameraHealth
from gridwatch.settings.camera import CameraSettings


class CameraHealthSource(Protocol):
    def camera_health(self) -> list[CameraHealth]: ...


class PreviewPicture(Protocol):
    """A camera's newest preview JPEG (None before its first) and its Unix time."""

    @property
    def jpeg(self) -> bytes | None: ...

    @property
    def wall(self) -> float | None: ...


class LiveCamera(Protocol):
    """One camera as the camera wall and the live view read it
    (`gridwatch.node.cameras.CameraStatus`)."""

    @property
    def camera(self) -> CameraSettings: ...

    @property
    def preview(self) -> PreviewPicture: ...

    @property
    def last_result(self) -> dict[str, Any] | None: ...

    def on_result(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]: ...


class Cameras(Protocol):
    """Per-camera access for the picture and live-view routes."""

    def camera(self, camera_id: str) -> LiveCamera | None: ...

    def want_preview(self, camera_id: str) -> None:
        """Someone is looking at the camera's picture: keep it coming at the full rate."""


class LiveVideo(Protocol):
    """One camera's encoded video as the worker that holds the camera streams it
    (`gridwatch.worker.live.LiveLink`): a `StreamDescription` whenever a stream starts, then
    its packets. The worker stops when it hears no keepalive for a few seconds."""

    def receive(self, timeout: float) -> StreamDescription | EncodedPacket | None:
        """The next message; None after `timeout`; EOFError once the stream ended."""

    def keepalive(self) -> None:
        """Tell the worker the viewer is still there (about every second)."""

    def close(self) -> None: ...


class LiveSources(Protocol):
    """Where the live view gets a camera's video: from its worker, never from the camera."""

    def open_live(self, camera_id: str) -> LiveVideo:
        """Raises ConnectionError, naming the camera, when its worker is not running."""


class WorkerView(Protocol):
    """One worker process as the metrics show it (`gridwatch.worker.supervisor.WorkerStatus`)."""

    @property
    def index(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    @property
    def restarts(self) -> int: ...

    @property
    def cameras(self) -> list[str]: ...

    @property
    def cpu_s(self) -> float | None: ...

    @property
    def rss_bytes(self) -> int | None: ...

    @property
    def messages_dropped(self) -> int | None: ...

    @property
    def analysis_age_s(self) -> float | None: ...


class IncidentCounts(Protocol):
    def counts_by_kind_and_status(self) -> dict[tuple[str, str], int]: ...


class MetricsSource(CameraHealthSource, Protocol):
    """What `/metrics` reads at scrape time."""

    @property
    def store(self) -> IncidentCounts: ...

    def worker_statuses(self) -> Sequence[WorkerView]: ...


class ServiceView(CameraHealthSource, Cameras, LiveSources, Protocol):
    """What the API and the console need from the running service."""

    @property
    def store(self) -> IncidentStore: ...

    @property
    def evidence(self) -> EvidenceWriter: ...

    @property
    def grid(self) -> Grid: ...

    @property
    def accounts(self) -> Accounts: ...
