"""Camera-wall previews are encoded at the full rate only while someone looks at them.

The encoder and the main process's demand tracker run on an injected clock; the service
tests run the real `Service` on the real RTSP test server (a keyframe every 0.5 s), with
its camera in a worker process and, with `workers.count: 0`, in the main process, and ask
for pictures through the real HTTP route.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from gridwatch.ingest.frame import Frame
from gridwatch.node.previews import PreviewDemand
from gridwatch.service import Service
from gridwatch.settings import ConfigError, parse_config
from gridwatch.settings.workers import WorkersSettings
from gridwatch.web.api import create_app
from gridwatch.worker.shard import PreviewEncoder
from tests.support.gridapp import cli_admin
from tests.support.rtsp import RtspTestServer, service_config

pytest_plugins = ["tests.support.rtsp_fixtures"]

INTERVAL_S = 1.0
IDLE_S = 30.0
DEMAND_S = 10.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def frame(index: int) -> Frame:
    """A 1280x720 picture with some structure (a gradient and a box)."""
    image = np.tile(np.linspace(0, 255, 1280, dtype=np.uint8), (720, 1))
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    cv2.rectangle(image, (400, 200), (800, 500), (0, 0, 255), -1)
    return Frame.from_bgr("pier", index, index * 0.5, time.time(), image)


def pictures_over(encoder: PreviewEncoder, clock: Clock, seconds: float,
                  step_s: float = 0.5) -> int:
    """Offer a frame every `step_s` (a keyframe every 0.5 s) for `seconds`; the pictures
    made."""
    made = 0
    for index in range(round(seconds / step_s)):
        clock.advance(step_s)
        made += encoder.offer(frame(index)) is not None
    return made


# --- the worker's encoder ---------------------------------------------------------------


def test_encoder_makes_a_picture_of_the_first_frame_then_only_one_per_idle_interval() -> None:
    clock = Clock()
    encoder = PreviewEncoder(INTERVAL_S, IDLE_S, clock=clock)
    first = encoder.offer(frame(0))
    assert first is not None and first.jpeg[:2] == b"\xff\xd8"
    picture = cv2.imdecode(np.frombuffer(first.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[:2] == (360, 640) and (first.width, first.height) == (1280, 720)
    assert pictures_over(encoder, clock, IDLE_S - 1) == 0
    assert pictures_over(encoder, clock, 1) == 1, "one picture when the idle interval is up"
    assert not encoder.wanted


def test_wanted_encoder_makes_a_picture_at_the_next_frame_then_one_per_interval() -> None:
    clock = Clock()
    encoder = PreviewEncoder(INTERVAL_S, IDLE_S, clock=clock)
    encoder.offer(frame(0))
    clock.advance(10)
    encoder.want(8)
    assert encoder.wanted
    assert encoder.offer(frame(1)) is not None, "the first frame after the demand is encoded"
    assert pictures_over(encoder, clock, 6) == 6
    assert pictures_over(encoder, clock, 4) == 1, "the demand ended 8 s after it came"
    assert not encoder.wanted
    assert pictures_over(encoder, clock, 20) == 0


def test_a_shorter_demand_does_not_cut_a_longer_one_short() -> None:
    clock = Clock()
    encoder = PreviewEncoder(INTERVAL_S, IDLE_S, clock=clock)
    encoder.want(10)
    clock.advance(1)
    encoder.want(2)
    clock.advance(8.5)
    assert encoder.wanted
    clock.advance(1)
    assert not encoder.wanted


# --- the main process's demand -------------------------------------------------------------


def test_demand_tells_the_worker_on_the_first_request_and_renews_only_past_half_time() -> None:
    clock = Clock()
    told: list[dict[str, float]] = []
    demand = PreviewDemand(10, told.append, clock=clock)
    demand.want("pier")
    assert told == [{"pier": 10}]
    for _ in range(4):  # a wall refreshing every second
        clock.advance(1)
        demand.want("pier")
    assert len(told) == 1, "no control message per request"
    clock.advance(1)
    demand.want("pier")
    demand.want("quay")
    assert told[1:] == [{"pier": 10}, {"quay": 10}], "renewed with half of it left"
    clock.advance(60)
    demand.want("pier")
    assert told[-1] == {"pier": 10} and len(told) == 4, "told again after a lapse"


# --- the settings --------------------------------------------------------------------------


def test_preview_settings_default_to_a_rare_idle_picture_and_a_demand_longer_than_a_refresh(
) -> None:
    workers = WorkersSettings()
    assert (workers.preview_interval_s, workers.preview_idle_interval_s,
            workers.preview_demand_s) == (1.0, 30.0, 15.0)


@pytest.mark.parametrize(("settings", "problem"), [
    ({"preview_interval_s": 5, "preview_idle_interval_s": 2},
     "workers: preview_idle_interval_s: must be at least preview_interval_s"),
    ({"preview_interval_s": 5, "preview_demand_s": 8},
     "workers: preview_demand_s: must be at least twice preview_interval_s"),
    ({"preview_idle_interval_s": 0}, "workers.preview_idle_interval_s: Input should be "
                                     "greater than 0"),
    ({"preview_demand_s": 1}, "workers.preview_demand_s: Input should be greater than or "
                              "equal to 2"),
])
def test_preview_settings_that_cannot_work_are_refused(settings: dict[str, Any],
                                                        problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"workers": settings})
    assert err.value.problems == [problem]


# --- the running service -------------------------------------------------------------------


@pytest.fixture(scope="module", params=[1, 0], ids=["worker-process", "main-process"])
def service(request: pytest.FixtureRequest, rtsp_server: RtspTestServer, models_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One RTSP camera, in a worker process or (count 0) in the main process."""
    config = service_config(
        tmp_path_factory.mktemp("previews"), models_dir, {"pier": rtsp_server.url("cam")},
        analysis={"mode": "watch"},
        workers={"count": request.param, "heartbeat_timeout_s": 5,
                 "restart_backoff_initial_s": 0.2, "preview_interval_s": INTERVAL_S,
                 "preview_idle_interval_s": IDLE_S, "preview_demand_s": DEMAND_S})
    service = Service(config)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[TestClient]:
    """The HTTP API as a whole-city viewer with an API token."""
    service.accounts.create_user(cli_admin(), "wall", None, "viewer", "city")
    _, secret = service.accounts.create_token(cli_admin(), "wall", "preview tests")
    with TestClient(create_app(service)) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        yield client


def preview_of(service: Service) -> dict[str, Any]:
    return service.camera_health()[0].preview.model_dump()


def wait_until(service: Service, check: Callable[[dict[str, Any]], bool], timeout: float,
               what: str) -> None:
    """Until `check(preview of the camera)` holds; fails with the last one seen."""
    deadline = time.monotonic() + timeout
    while not check(preview := preview_of(service)):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s; last preview: {preview}")
        time.sleep(0.1)


def idle(service: Service) -> None:
    """Wait until the camera streams and no demand is left from an earlier test."""
    wait_until(service, lambda p: p["seq"] >= 1 and p["wanted"] is False, 60,
               "a first picture and no demand")


def pictures_in(service: Service, seconds: float,
                look: Callable[[], object] | None = None) -> int:
    """Pictures the main process received over `seconds`, asking for one every second
    with `look` (as the console's wall does) if given."""
    start = preview_of(service)["seq"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if look is not None:
            look()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    return preview_of(service)["seq"] - start


@pytest.mark.rtsp
@pytest.mark.timeout(180)
def test_nobody_asking_the_camera_stays_at_the_idle_rate_and_a_request_brings_full_rate(
    service: Service, client: TestClient,
) -> None:
    idle(service)
    assert pictures_in(service, 4) == 0, "no request, no picture before the idle interval"

    answer = client.get("/api/live/cameras/pier/frame.jpg")
    assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8"
    age = time.time() - float(answer.headers["X-Frame-Wall"])
    assert age >= 3, "the first answer is the older idle picture, and says so"
    seq = preview_of(service)["seq"]
    wait_until(service, lambda p: p["seq"] > seq, 2.5, "a new picture after the first request")

    def look() -> None:
        assert client.get("/api/live/cameras/pier/frame.jpg").status_code == 200

    # At most one a second, on keyframes 0.5 s apart: one every 1 to 1.5 s.
    made = pictures_in(service, 6, look)
    assert 3 <= made <= 7, f"about one picture a second while asked, got {made} in 6 s"
    wait_until(service, lambda p: p["wanted"] is True, 2, "the camera reported wanted")

    # Nobody asks any more: the demand lapses DEMAND_S after the last renewal.
    wait_until(service, lambda p: p["wanted"] is False, DEMAND_S + 3, "the demand lapsed")
    assert pictures_in(service, 4) == 0, "back at the idle rate"


@pytest.mark.rtsp
@pytest.mark.timeout(180)
@pytest.mark.parametrize("service", [1], ids=["worker-process"], indirect=True)
def test_a_restarted_worker_is_told_the_demand_that_still_lasts(
    service: Service, client: TestClient,
) -> None:
    idle(service)
    assert client.get("/api/live/cameras/pier/frame.jpg").status_code == 200
    wait_until(service, lambda p: p["wanted"] is True, 2.5, "the camera wanted")
    pid = service.camera_health()[0].worker.pid
    os.kill(pid, signal.SIGKILL)

    deadline = time.monotonic() + 6
    while service.camera_health()[0].worker.pid in (None, pid):
        assert time.monotonic() < deadline, "the camera back in a new worker within 6 s"
        time.sleep(0.1)
    # No request since the kill: only the supervisor's re-sent demand makes it wanted.
    wait_until(service, lambda p: p["wanted"] is True, 2, "the new worker told")
    assert pictures_in(service, 2) >= 1
