"""Drive the real RTSP test server (scripts/rtsp_server.py) from tests and benchmarks.

The server runs as a subprocess of Debian's /usr/bin/python3 (gst-rtsp-server via PyGObject
is not installable into the virtualenv). "Ready" means a real frame was decoded from it, not
that the port is open: readers that connect the instant the port opens can fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import quote

import av

from gridwatch.settings import GridwatchSettings, parse_config
from tests.support.processes import die_with_parent

REPO = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO / "scripts" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_USER = "viewer"
RTSP_PASSWORD = "s3cret-Pw!42"
"""Credentials of the shared test server (the `rtsp_server` fixture)."""


class RtspServerError(RuntimeError):
    """The test server did not start or did not serve frames in time."""


def cache_dir(sub: str = "rtsp") -> Path:
    base = os.environ.get("GRIDWATCH_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "gridwatch"
    path = root / sub
    path.mkdir(parents=True, exist_ok=True)
    return path


def encode_once(source: Path, tag: str, input_args: list[str], output_args: list[str],
                folder: Path | None = None, timeout: float = 120) -> Path:
    """`ffmpeg [input_args] -i source [output_args]` into a cached file, made once.

    The file is keyed by the source's content hash and `tag` (the parameters), and written
    atomically because several test or benchmark processes may ask for it at once.
    """
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = (folder or cache_dir()) / f"{source.stem}-{digest}{tag}.mp4"
    if target.is_file():
        return target
    args = ["ffmpeg", "-v", "error", "-y", *input_args, "-i", str(source), *output_args]
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".mp4", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        subprocess.run([*args, str(partial)], check=True, capture_output=True, timeout=timeout)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def loop_clip(
    source: Path, seconds: float | None = 4.0, gop: int = 25, width: int | None = None,
    start: float | None = None,
) -> Path:
    """A camera-like copy of a real clip (from `start` s): H.264 main, no B-frames, fixed GOP.

    Shared footage has B-frames and irregular GOPs; a real camera has neither.
    """
    offset = "" if start is None else f"-s{start}"
    before = [] if start is None else ["-ss", str(start)]
    after = [] if seconds is None else ["-t", str(seconds)]
    if width is not None:
        after += ["-vf", f"scale={width}:-2"]
    after += ["-an", "-c:v", "libx264", "-profile:v", "main", "-preset", "veryfast",
              "-pix_fmt", "yuv420p", "-bf", "0", "-g", str(gop), "-keyint_min", str(gop),
              "-sc_threshold", "0", "-movflags", "+faststart"]
    return encode_once(source, f"{offset}-t{seconds}-g{gop}-w{width}", before, after)


def read_frames(url: str, count: int = 1, timeout: float = 3.0, transport: str = "tcp") -> int:
    """Decode `count` frames from `url` with PyAV; returns how many arrived."""
    got = 0
    with av.open(url, options={"rtsp_transport": transport}, timeout=(timeout, timeout)) as c:
        for _ in c.decode(video=0):
            got += 1
            if got >= count:
                break
    return got


class RtspTestServer:
    """A gst-rtsp-server subprocess serving looping clips on 127.0.0.1.

    `ready_at` is the monotonic time the last (re)start printed its readiness line, so tests
    can measure how long a client needs to recover after the server came back.
    """

    def __init__(
        self,
        paths: Mapping[str, Path],
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        if not paths:
            raise ValueError("paths: serve at least one clip")
        self.paths = {name.strip("/"): Path(file) for name, file in paths.items()}
        self.user = user
        self.password = password
        self.port = port or 0
        self.ready_timeout = ready_timeout
        self.ready_at: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RtspTestServer(port={self.port}, paths={sorted(self.paths)})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def url(self, path: str, with_auth: bool = True, password: str | None = None) -> str:
        """rtsp URL of a path; `password` overrides the server's (to test wrong ones)."""
        auth = ""
        if with_auth and self.user is not None:
            secret = self.password if password is None else password
            auth = f"{quote(self.user, safe='')}:{quote(secret or '', safe='')}@"
        return f"rtsp://{auth}127.0.0.1:{self.port}/{path.strip('/')}"

    def start(self, wait_for_frame: bool = True) -> Self:
        if self._proc is not None and self._proc.poll() is None:
            raise RtspServerError("already running")
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for name, file in self.paths.items():
            cmd += ["--path", f"{name}={file}"]
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password or ""]
        # Lives as long as the process (closed in _close), so no `with` block.
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True, start_new_session=True,
                                      preexec_fn=die_with_parent)
        deadline = time.monotonic() + self.ready_timeout
        try:
            ready = self._read_ready_line(deadline)
            self.port = int(ready["port"])
            self.ready_at = time.monotonic()
            if wait_for_frame:
                self._wait_for_frame(deadline)
        except BaseException:
            self.kill()
            raise
        return self

    def _read_ready_line(self, deadline: float) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RtspServerError(f"server exited with {self._proc.returncode}: "
                                      f"{self._stderr_tail()}")
            readable, _, _ = select.select([self._proc.stdout], [], [], 0.1)
            if readable:
                line = self._proc.stdout.readline()
                if line.startswith("{"):
                    event = json.loads(line)
                    if event.get("event") == "ready":
                        return event
        raise RtspServerError(f"no readiness line in {self.ready_timeout} s: "
                              f"{self._stderr_tail()}")

    def _wait_for_frame(self, deadline: float) -> None:
        path = next(iter(self.paths))
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if read_frames(self.url(path), 1, timeout=3.0):
                    return
            except (av.FFmpegError, OSError) as exc:
                last_error = exc
                time.sleep(0.2)
        raise RtspServerError(f"no frame from /{path} within {self.ready_timeout} s: "
                              f"{type(last_error).__name__}")

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def _signal(self, signum: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RtspServerError("server is not running")
        self._proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; a frozen server is thawed first so it can act on it.

        Returns the exit code (None when it was not running).
        """
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        code = self._proc.returncode
        self._close()
        return code

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing its sessions."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._close()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing more is sent or answered."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self, wait_for_frame: bool = True) -> Self:
        """Stop and start again on the same port (the port a client keeps retrying)."""
        self.stop()
        return self.start(wait_for_frame=wait_for_frame)

    def _close(self) -> None:
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
        self._proc = None
        self._stderr = None


QUICK_STREAM = {"open_timeout_s": 3, "read_timeout_s": 3, "stall_timeout_s": 3,
                "backoff_initial_s": 0.2, "backoff_max_s": 1}
"""Stream options that notice a lost camera and come back within seconds."""


def service_config(data: Path, models_dir: Path, cameras: dict[str, str],
                   **settings: Any) -> GridwatchSettings:
    """The service's configuration for cameras (id: URL) of a test server, with its store
    and evidence under `data`; `settings` adds top-level sections (`workers`, ...)."""
    return parse_config({
        "storage": {"url": f"sqlite:///{data}/gw.db", "evidence_dir": str(data / "evidence")},
        "model": {"dir": str(models_dir)},
        "cameras": [{"id": camera, "url": url, "stream": QUICK_STREAM}
                    for camera, url in cameras.items()],
        **settings,
    })
