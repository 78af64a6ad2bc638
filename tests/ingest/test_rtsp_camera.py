"""CameraRunner against the real RTSP server: states, recovery, backoff, redaction."""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gridwatch.ingest.camera import CameraRunner
from gridwatch.ingest.state import CameraState, StateChange
from gridwatch.settings.stream import StreamSettings
from tests.support.rtsp import RTSP_PASSWORD, RtspTestServer

pytest_plugins = ["tests.support.rtsp_fixtures"]
pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(90)]

MakeServer = Callable[..., RtspTestServer]
READ_TIMEOUT_S = 2.0
FAST = StreamSettings(open_timeout_s=2.0, read_timeout_s=READ_TIMEOUT_S,
                     stall_timeout_s=READ_TIMEOUT_S, backoff_initial_s=0.2, backoff_max_s=1.0,
                     rejected_backoff_initial_s=0.3, rejected_backoff_max_s=5.0)


class StateLog:
    """Collects state changes with the monotonic time they were seen."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, StateChange]] = []
        self._cond = threading.Condition()

    def __call__(self, _camera: str, change: StateChange) -> None:
        with self._cond:
            self.changes.append((time.monotonic(), change))
            self._cond.notify_all()

    def wait_for(self, state: CameraState, after: float = 0.0, timeout: float = 10.0) -> float:
        """Monotonic time `state` was entered after `after`; fails the test on timeout."""
        def seen() -> float | None:
            return next((t for t, c in self.changes if c.state is state and t >= after), None)

        with self._cond:
            if not self._cond.wait_for(lambda: seen() is not None, timeout):
                states = [(round(t - after, 2), c.state.value, c.reason)
                          for t, c in self.changes]
                pytest.fail(f"no {state.value} within {timeout} s; saw {states}")
            return seen()  # type: ignore[return-value]


@pytest.fixture
def run_camera() -> Iterator[Callable[..., tuple[CameraRunner, StateLog]]]:
    runners: list[CameraRunner] = []

    def run(uri: str, options: StreamSettings = FAST) -> tuple[CameraRunner, StateLog]:
        states = StateLog()
        runner = CameraRunner("cam-under-test", uri, options, on_state=states)
        runners.append(runner)
        runner.start()
        return runner, states

    yield run
    for runner in runners:
        runner.stop()


@pytest.fixture
def online_private_camera(
    make_rtsp_server: MakeServer, run_camera,
) -> tuple[RtspTestServer, CameraRunner, StateLog]:
    """A private server (to kill or freeze) and a runner already online on it."""
    server = make_rtsp_server()
    runner, states = run_camera(server.url("cam"))
    states.wait_for(CameraState.ONLINE)
    return server, runner, states


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_runner_reads_a_looping_stream_with_continuous_index_and_time(
    rtsp_server: RtspTestServer, run_camera,
) -> None:
    runner, states = run_camera(rtsp_server.url("cam"))
    frames = []
    deadline = time.monotonic() + 15
    while len(frames) < 80 and time.monotonic() < deadline:
        if (frame := runner.get(timeout=3)) is not None:
            frames.append(frame)
            runner.mark_analysed()
    assert len(frames) == 80
    assert [s.state for _, s in states.changes] == [CameraState.CONNECTING, CameraState.ONLINE]
    indexes = [f.index for f in frames]
    assert indexes == sorted(set(indexes))
    assert frames[-1].t - frames[0].t > 2.0, "more than the 2 s clip: it looped"
    health = runner.health()
    counters = health["counters"]
    assert health["state"] == "online"
    assert counters["analysed"] == 80
    assert counters["frames_decoded"] >= 80
    assert counters["bitrate_bps"] > 10_000
    assert counters["last_frame_age_s"] < 0.5


def test_udp_transport_goes_online(rtsp_server: RtspTestServer, run_camera) -> None:
    runner, states = run_camera(rtsp_server.url("cam2"), FAST.model_copy(
        update={"transport": "udp"}))
    states.wait_for(CameraState.ONLINE)
    assert runner.get(timeout=3) is not None


def test_wrong_password_reports_auth_failed_and_backs_off(
    rtsp_server: RtspTestServer, run_camera,
) -> None:
    runner, states = run_camera(rtsp_server.url("cam", password="not-the-password"))
    states.wait_for(CameraState.AUTH_FAILED, timeout=5)
    attempts = [time.monotonic()]
    seen = 0
    end = attempts[0] + 4.5
    while time.monotonic() < end:
        count = runner.counters.reconnects
        if count > seen:
            attempts.extend([time.monotonic()] * (count - seen))
            seen = count
        time.sleep(0.01)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # Waits 0.3*2**(n-1) + U(0, 0.3): about 0.3-0.6, 0.6-0.9, 1.2-1.5, 2.4-2.7 s.
    assert 3 <= len(gaps) <= 5, gaps
    assert all(b >= a - 0.05 for a, b in itertools.pairwise(gaps[1:])), gaps
    assert gaps[-1] > 1.0
    assert runner.state is CameraState.AUTH_FAILED
    assert "credentials rejected" in runner.reason and "401" in runner.reason
    assert runner.get(timeout=0.1) is None


def test_missing_password_reports_auth_failed(rtsp_server: RtspTestServer, run_camera) -> None:
    runner, states = run_camera(rtsp_server.url("cam", with_auth=False))
    states.wait_for(CameraState.AUTH_FAILED, timeout=5)
    assert runner.health()["state"] == "auth_failed"


def test_unknown_path_reports_not_found(rtsp_server: RtspTestServer, run_camera) -> None:
    runner, states = run_camera(rtsp_server.url("no-such-camera"))
    states.wait_for(CameraState.NOT_FOUND, timeout=5)
    assert "404" in runner.reason


def test_killed_server_goes_offline_and_recovers_when_it_returns(
    online_private_camera: tuple[RtspTestServer, CameraRunner, StateLog],
) -> None:
    server, runner, states = online_private_camera
    last_index = runner.get(timeout=3).index

    killed = time.monotonic()
    server.kill()
    offline = states.wait_for(CameraState.OFFLINE, after=killed, timeout=READ_TIMEOUT_S + 1)
    time.sleep(2.0)  # the runner keeps retrying against a closed port meanwhile
    server.start(wait_for_frame=False)
    online = states.wait_for(CameraState.ONLINE, after=server.ready_at, timeout=3.0)
    frame = runner.get(timeout=3)

    assert offline - killed <= READ_TIMEOUT_S
    assert online - server.ready_at <= 3.0
    assert runner.counters.reconnects >= 2
    assert frame is not None and frame.index > last_index
    print(f"offline after {offline - killed:.2f} s, "
          f"first frame {online - server.ready_at:.2f} s after the server came back")


def test_frozen_server_is_stalled_and_recovers_when_thawed(
    online_private_camera: tuple[RtspTestServer, CameraRunner, StateLog],
) -> None:
    server, runner, states = online_private_camera

    frozen = time.monotonic()
    server.freeze()
    stalled = states.wait_for(CameraState.STALLED, after=frozen, timeout=READ_TIMEOUT_S + 2)
    time.sleep(1.0)
    thawed = time.monotonic()
    server.thaw()
    online = states.wait_for(CameraState.ONLINE, after=thawed, timeout=10)

    assert stalled - frozen <= READ_TIMEOUT_S + 1.0
    assert runner.get(timeout=3) is not None
    print(f"stalled {stalled - frozen:.2f} s after the freeze, "
          f"online {online - thawed:.2f} s after the thaw")


def test_reader_blocked_on_a_frozen_server_exits_when_stopped(
    online_private_camera: tuple[RtspTestServer, CameraRunner, StateLog], run_camera,
) -> None:
    server, reading, _ = online_private_camera
    server.freeze()
    time.sleep(0.5)  # blocked in a read now, long before any timeout
    opening, _ = run_camera(server.url("cam"))
    time.sleep(0.5)  # blocked in the RTSP handshake with a server that never answers

    asked = time.monotonic()
    assert reading.stop(timeout=READ_TIMEOUT_S + 1.5)
    read_exit = time.monotonic() - asked
    asked = time.monotonic()
    assert opening.stop(timeout=2 * FAST.open_timeout_s + 1)
    open_exit = time.monotonic() - asked
    assert not reading.running and not opening.running
    print(f"blocked reader ended {read_exit:.2f} s after stop(), "
          f"blocked opener {open_exit:.2f} s after stop()")


def test_garbage_speaking_listener_is_an_error_state_not_a_crash(run_camera) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer_garbage() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-not-rtsp\r\n" + bytes(range(256)) * 4)

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        runner, states = run_camera(f"rtsp://user:pw@127.0.0.1:{port}/cam")
        states.wait_for(CameraState.UNSUPPORTED, timeout=5)
        time.sleep(0.5)
        assert runner.running
        assert runner.state in (CameraState.UNSUPPORTED, CameraState.OFFLINE)
    finally:
        listener.close()


def test_slow_consumer_gets_recent_frames_while_drops_are_counted_and_memory_stays_flat(
    rtsp_server: RtspTestServer, run_camera,
) -> None:
    runner, states = run_camera(rtsp_server.url("cam"))
    states.wait_for(CameraState.ONLINE)
    ages = []
    rss = []
    for step in range(12):
        frame = runner.get(timeout=3)
        assert frame is not None
        ages.append(time.time() - frame.wall)
        frame.bgr()  # what a detector would do: the frame now holds a BGR copy as well
        if step in (3, 11):
            rss.append(_rss_bytes())
        time.sleep(0.4)
    dropped = runner.counters.frames_dropped
    assert max(ages) < 0.25, ages
    assert dropped >= 12 * 8, "30 fps read, 2.5 fps consumed"
    assert rss[1] - rss[0] < 16 * 2**20


def test_keyframes_only_switches_on_a_live_stream_without_reconnecting(
    rtsp_server: RtspTestServer, run_camera,
) -> None:
    runner, states = run_camera(rtsp_server.url("cam2"))
    states.wait_for(CameraState.ONLINE)

    def collect(seconds: float) -> list:
        end = time.monotonic() + seconds
        frames = []
        while time.monotonic() < end:
            if (frame := runner.get(timeout=1)) is not None:
                frames.append(frame)
        return frames

    collect(0.5)
    runner.set_keyframes_only(True)
    collect(0.6)  # let frames decoded before the switch drain
    watch = collect(2.0)
    runner.set_keyframes_only(False)
    collect(0.3)
    active = collect(1.0)

    assert watch and all(f.keyframe for f in watch)
    assert 2 <= len(watch) <= 6, "GOP 15 at 30 fps: two keyframes a second"
    assert len(active) > 20 and not all(f.keyframe for f in active)
    assert runner.counters.reconnects == 0


def test_password_never_appears_in_logs_health_repr_or_history(
    rtsp_server: RtspTestServer, run_camera, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ingest")
    good, good_states = run_camera(rtsp_server.url("cam"))
    wrong, wrong_states = run_camera(rtsp_server.url("cam", password=RTSP_PASSWORD + "x"))
    good_states.wait_for(CameraState.ONLINE)
    wrong_states.wait_for(CameraState.AUTH_FAILED)
    good.get(timeout=3)

    for runner in (good, wrong):
        shown = [caplog.text, json.dumps(runner.health()), repr(runner),
                 *(c.reason for c in runner.history)]
        for text in shown:
            assert RTSP_PASSWORD not in text
        assert "viewer:***@" in json.dumps(runner.health())
    assert "viewer:***@" in caplog.text
