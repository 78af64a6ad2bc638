"""Prometheus metrics at `/metrics`: cameras, worker processes and incidents.

Values are read at scrape time from what the service already keeps (the cameras' health as
their workers report it, the supervisor's view of the workers, the incident table), so
nothing is counted twice and a dead worker shows at once (`gridwatch_worker_up 0`, a growing
last-frame age). Each service has its own registry: several services in one process (tests)
never clash, and the process-global default metrics are not mixed in.

`/metrics` is open like `/api/health` unless `api.metrics_token` is set, in which case it
needs `Authorization: Bearer <token>` (Prometheus' `authorization` scrape setting). It shows
camera ids, states and counts, never stream URLs or credentials.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from gridwatch.ingest.state import CameraState
from gridwatch.web.views import MetricsSource

log = logging.getLogger(__name__)

MODES = ("watch", "active")
CAMERA_COUNTERS = (
    ("frames_received", "frames_received", "Encoded frames (packets) received"),
    ("frames_decoded", "frames_decoded", "Frames decoded"),
    ("frames_analysed", "analysed", "Frames analysed by the detection core"),
    ("frames_dropped", "frames_dropped", "Decoded frames replaced before analysis took them"),
    ("decode_errors", "decode_errors", "Packets the decoder rejected"),
    ("reconnects", "reconnects", "Reconnections (a worker restart counts as one)"),
    ("received_bytes", "bytes_received", "Bytes of video received"),
)


class ServiceCollector(Collector):
    """Builds every series from the service's state at scrape time."""

    def __init__(self, service: MetricsSource) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        yield from self._cameras()
        yield from self._workers()
        yield from self._incidents()

    def _cameras(self) -> Iterator[Metric]:
        labels = ["camera", "worker"]
        counters = {name: CounterMetricFamily(f"gridwatch_camera_{name}", doc, labels=labels)
                    for name, _key, doc in CAMERA_COUNTERS}
        age = GaugeMetricFamily("gridwatch_camera_last_frame_age_seconds",
                                "Seconds since the camera's last decoded frame (NaN: none yet)",
                                labels=labels)
        bitrate = GaugeMetricFamily("gridwatch_camera_bitrate_bits_per_second",
                                    "Received video bitrate over the last seconds",
                                    labels=labels)
        state = StateSetMetricFamily("gridwatch_camera_state", "Camera state", labels=labels)
        mode = StateSetMetricFamily("gridwatch_camera_mode",
                                    "Decode mode: watch (keyframes only) or active",
                                    labels=labels)
        switches = CounterMetricFamily("gridwatch_camera_mode_switches",
                                       "Changes between watch and active mode", labels=labels)
        for camera in self.service.camera_health():
            values = [camera.id, str(camera.worker.index)]
            numbers = camera.counters
            for name, key, _doc in CAMERA_COUNTERS:
                counters[name].add_metric(values, getattr(numbers, key))
            frame_age = numbers.last_frame_age_s
            age.add_metric(values, math.nan if frame_age is None else frame_age)
            bitrate.add_metric(values, numbers.bitrate_bps)
            state.add_metric(values, {s.value: camera.state is s for s in CameraState})
            mode.add_metric(values, {m: camera.mode.current == m for m in MODES})
            switches.add_metric(values, camera.mode.switches)
        yield from counters.values()
        yield from (age, bitrate, state, mode, switches)

    def _workers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gridwatch_worker_up", "1 while the worker process runs",
                               labels=["worker"])
        cpu = CounterMetricFamily("gridwatch_worker_cpu_seconds",
                                  "CPU time (user + system) of the worker's current process",
                                  labels=["worker"])
        rss = GaugeMetricFamily("gridwatch_worker_resident_memory_bytes",
                                "Resident memory of the worker process", labels=["worker"])
        restarts = CounterMetricFamily("gridwatch_worker_restarts",
                                       "Times the worker was restarted", labels=["worker"])
        cameras = GaugeMetricFamily("gridwatch_worker_cameras", "Cameras the worker runs",
                                    labels=["worker"])
        dropped = CounterMetricFamily(
            "gridwatch_worker_messages_dropped",
            "Previews, results and heartbeats replaced before they were sent (a slow main "
            "process), in the worker's current process", labels=["worker"])
        stuck = GaugeMetricFamily("gridwatch_worker_analysis_age_seconds",
                                  "Seconds since the worker's analysis thread came round, as "
                                  "of its last heartbeat", labels=["worker"])
        for status in self.service.worker_statuses():
            worker = [str(status.index)]
            up.add_metric(worker, 1.0 if status.alive else 0.0)
            if status.cpu_s is not None:
                cpu.add_metric(worker, status.cpu_s)
            if status.rss_bytes is not None:
                rss.add_metric(worker, status.rss_bytes)
            restarts.add_metric(worker, status.restarts)
            cameras.add_metric(worker, len(status.cameras))
            if status.alive and status.messages_dropped is not None:
                dropped.add_metric(worker, status.messages_dropped)
            if status.alive and status.analysis_age_s is not None:
                stuck.add_metric(worker, status.analysis_age_s)
        yield from (up, cpu, rss, restarts, cameras, dropped, stuck)

    def _incidents(self) -> Iterator[Metric]:
        incidents = GaugeMetricFamily("gridwatch_incidents",
                                      "Incidents in the store by kind and status",
                                      labels=["kind", "status"])
        try:
            counts = self.service.store.counts_by_kind_and_status()
        except Exception:
            log.exception("metrics: could not count incidents")
            counts = {}
        for (kind, status), count in counts.items():
            incidents.add_metric([kind, status], count)
        yield incidents


class ServiceMetrics:
    """The service's registry and its `/metrics` route."""

    def __init__(self, service: MetricsSource, token: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServiceCollector(service))
        self.token = token

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def router(self) -> APIRouter:
        routes = APIRouter(tags=["health"])

        @routes.get("/metrics", response_class=Response, responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}},
                  "description": "Prometheus text format"},
            401: {"description": "`api.metrics_token` is set and was not sent"}})
        def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
            """Cameras (frames, drops, reconnects, last-frame age, bitrate, state, mode),
            worker processes (up, CPU, memory, restarts) and incidents by kind and status."""
            self._check(authorization)
            return Response(self.render(), media_type=CONTENT_TYPE_LATEST)

        return routes

    def _check(self, authorization: str | None) -> None:
        if self.token is None:
            return
        expected = f"Bearer {self.token}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "metrics need the configured bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

