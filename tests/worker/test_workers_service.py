"""The real service with its cameras in worker processes, on the real RTSP server: health in
the API fed from the workers, and workers that are killed or wedged coming back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gridwatch.service import Service
from gridwatch.web.api import create_app
from tests.support.rtsp import RTSP_PASSWORD, RtspTestServer, service_config

pytest_plugins = ["tests.support.rtsp_fixtures"]
pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(120)]

HEARTBEAT_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def service(rtsp_server: RtspTestServer, models_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Two cameras in two worker processes, with a short heartbeat timeout."""
    config = service_config(
        tmp_path_factory.mktemp("workers"), models_dir,
        {"pier": rtsp_server.url("cam"), "quay": rtsp_server.url("cam2")},
        workers={"count": 2, "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S,
                 "restart_backoff_initial_s": 0.2})
    service = Service(config)
    service.start()
    yield service
    service.stop()
    assert all(not s.alive for s in service.worker_statuses()), "workers stopped with it"


def healths(service: Service) -> list[dict[str, Any]]:
    """The cameras' health as `/api/cameras` shows it."""
    return [h.model_dump(mode="json") for h in service.camera_health()]


def health_of(service: Service, camera: str) -> dict[str, Any]:
    return next(h for h in healths(service) if h["id"] == camera)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               show: Callable[[], object]) -> float:
    """Seconds until `check()` held; fails the test with `show()` after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what} within {timeout} s; last seen: {show()}")
        time.sleep(0.1)
    return time.monotonic() - start


def fresh(health: dict[str, Any]) -> bool:
    """Online and analysing right now, in a worker process."""
    age = health["counters"]["last_frame_age_s"]
    return (health["state"] == "online" and health["worker"]["pid"] is not None
            and age is not None and age < 2.0)


def all_fresh(service: Service) -> Callable[[], bool]:
    return lambda: all(fresh(h) for h in healths(service))


def test_each_worker_process_runs_its_cameras_and_the_api_health_keeps_updating(
    service: Service,
) -> None:
    wait_until(all_fresh(service), 60, "both cameras online", service.camera_health)
    pids = {h["id"]: h["worker"]["pid"] for h in healths(service)}
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    with TestClient(create_app(service)) as client:
        assert client.get("/api/health").json()["cameras"] == {"online": 2}
        before = {h["id"]: h["counters"]["analysed"] for h in healths(service)}
        time.sleep(2.5)
        after = {h["id"]: h["counters"]["analysed"] for h in healths(service)}
        metrics = client.get("/metrics")
    assert all(after[c] > before[c] for c in before), (before, after)
    for health in healths(service):
        assert health["mode"]["current"] in ("watch", "active")
        assert health["counters"]["bitrate_bps"] > 10_000
        assert health["preview"]["seq"] >= 1
        assert RTSP_PASSWORD not in repr(health)
    assert service.camera("pier").preview.jpeg[:2] == b"\xff\xd8"
    assert metrics.status_code == 200
    text = metrics.text
    for worker in ("0", "1"):
        assert f'gridwatch_worker_up{{worker="{worker}"}} 1.0' in text
        assert f'gridwatch_worker_cpu_seconds_total{{worker="{worker}"}}' in text
    assert 'gridwatch_camera_frames_analysed_total{camera="quay",worker="1"}' in text
    assert RTSP_PASSWORD not in text


def test_a_worker_killed_with_sigkill_is_restarted_and_its_cameras_are_back_within_10_s(
    service: Service,
) -> None:
    wait_until(all_fresh(service), 60, "both cameras online", service.camera_health)
    victim, bystander = health_of(service, "pier"), health_of(service, "quay")
    analysed = victim["counters"]["analysed"]
    os.kill(victim["worker"]["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: health_of(service, "pier")["state"] != "online", 3,
               "the camera of the killed worker reported down", lambda: health_of(service,
                                                                                  "pier"))
    down = health_of(service, "pier")
    assert down["state"] == "offline" and "SIGKILL" in down["reason"], down

    def back() -> bool:
        health = health_of(service, "pier")
        return fresh(health) and health["worker"]["pid"] != victim["worker"]["pid"]

    wait_until(back, 10 - (time.monotonic() - killed_at), "the camera back online",
               lambda: health_of(service, "pier"))
    recovered = health_of(service, "pier")
    assert recovered["counters"]["analysed"] >= analysed, "counters carry over the restart"
    assert recovered["counters"]["reconnects"] >= 1
    other = health_of(service, "quay")
    assert other["worker"]["pid"] == bystander["worker"]["pid"] and fresh(other)
    (status,) = [s for s in service.worker_statuses() if s.index == victim["worker"]["index"]]
    assert status.restarts >= 1 and status.alive


def test_a_stopped_worker_misses_its_heartbeat_and_is_replaced(service: Service) -> None:
    wait_until(all_fresh(service), 60, "both cameras online", service.camera_health)
    victim = health_of(service, "quay")
    pid = victim["worker"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()

        def replaced() -> bool:
            health = health_of(service, "quay")
            return fresh(health) and health["worker"]["pid"] != pid

        wait_until(replaced, HEARTBEAT_TIMEOUT_S + 12, "a new worker for the wedged one",
                   lambda: health_of(service, "quay"))
        took = time.monotonic() - stopped_at
    finally:
        if _exists(pid):
            os.kill(pid, signal.SIGCONT)
    assert took >= HEARTBEAT_TIMEOUT_S
    changes = health_of(service, "quay")["recent_changes"]
    assert any("no heartbeat" in c["reason"] for c in changes), changes
    assert not _exists(pid), "the wedged process was killed"


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
