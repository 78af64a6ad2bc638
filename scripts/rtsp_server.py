#!/usr/bin/python3
"""Real RTSP test server: serves H.264 clips as never-ending live streams on 127.0.0.1.

Runs under Debian's /usr/bin/python3 because PyGObject and gst-rtsp-server come from apt,
not from the project's virtualenv.

Why appsrc and not `filesrc ! qtdemux`: a file pipeline plays once and ends, and a seekable
(non-live) shared media gets re-seeked by every new client's PLAY. Instead each clip is
demuxed ONCE at start-up into H.264 access units held in memory; a feeder thread pushes them
into a live `appsrc` paced by the pipeline clock, adding one clip period to the timestamps on
every loop. Nothing is re-encoded at serve time, timestamps only ever grow, and a client that
joins at any moment gets the live point (SPS/PPS are repeated before every IDR).

Usage:
    /usr/bin/python3 scripts/rtsp_server.py --port 0 --path cam1=/clip.mp4 [--path ...]
        [--user U --password P]

Prints one JSON line `{"event": "ready", "port": N, "paths": [...]}` on stdout once it
accepts connections; SIGTERM/SIGINT stop it cleanly (exit code 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402

log = logging.getLogger("rtsp_server")

UDP_PORT_RANGE = (20000, 60000)


@dataclass(frozen=True, slots=True)
class AccessUnit:
    data: bytes
    pts: int
    dts: int
    duration: int
    delta: bool


@dataclass(frozen=True, slots=True)
class Clip:
    """One clip in memory: its access units, caps and the period one loop lasts (ns)."""

    name: str
    caps: str
    units: tuple[AccessUnit, ...]
    period: int


def load_clip(name: str, path: Path) -> Clip:
    """Demux a file into byte-stream access units with SPS/PPS before every IDR."""
    if not path.is_file():
        raise SystemExit(f"--path {name}: no such file {path}")
    pipeline = Gst.parse_launch(
        "filesrc name=file ! parsebin ! h264parse config-interval=-1 ! "
        "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false"
    )
    pipeline.get_by_name("file").set_property("location", str(path))
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[AccessUnit] = []
    caps = None
    while (sample := sink.pull_sample()) is not None:
        buf = sample.get_buffer()
        caps = caps or sample.get_caps().to_string()
        units.append(AccessUnit(
            data=buf.extract_dup(0, buf.get_size()),
            pts=buf.pts,
            dts=buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else buf.pts,
            duration=buf.duration,
            delta=buf.has_flags(Gst.BufferFlags.DELTA_UNIT),
        ))
    error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if error is not None:
        raise SystemExit(f"--path {name}: cannot read {path}: {error.parse_error()[0].message}")
    if not units or caps is None:
        raise SystemExit(f"--path {name}: {path} holds no H.264 video")
    if any(u.pts == Gst.CLOCK_TIME_NONE for u in units):
        raise SystemExit(f"--path {name}: {path} has access units without timestamps")
    return Clip(name, caps, _rebase(units), _period(units))


def _rebase(units: list[AccessUnit]) -> tuple[AccessUnit, ...]:
    """Shift timestamps so the first DTS is 0; B-frame PTS may lead DTS, never trail it."""
    origin = units[0].dts
    return tuple(
        AccessUnit(u.data, u.pts - origin, u.dts - origin, u.duration, u.delta) for u in units
    )


def _period(units: list[AccessUnit]) -> int:
    step = units[-1].duration
    if step == Gst.CLOCK_TIME_NONE or step <= 0:
        step = (units[-1].dts - units[0].dts) // max(1, len(units) - 1) or 40_000_000
    return units[-1].dts - units[0].dts + step


class Feeder(threading.Thread):
    """Pushes one clip into one live appsrc forever, paced by the pipeline clock."""

    def __init__(self, clip: Clip, appsrc: GstApp.AppSrc) -> None:
        super().__init__(name=f"feed-{clip.name}", daemon=True)
        self.clip = clip
        self.appsrc = appsrc
        self.stopped = threading.Event()

    def run(self) -> None:
        clock = self._wait_for_clock()
        if clock is None:
            return
        # Timestamps are running time; start a little ahead so the first buffer is not late.
        start = clock.get_time() - self.appsrc.get_base_time() + 20_000_000
        loop = 0
        while not self.stopped.is_set():
            offset = start + loop * self.clip.period
            for unit in self.clip.units:
                due = self.appsrc.get_base_time() + offset + unit.dts
                delay = (due - clock.get_time()) / 1e9
                if delay > 0 and self.stopped.wait(delay):
                    return
                if not self._push(unit, offset):
                    return
            loop += 1

    def _wait_for_clock(self) -> Gst.Clock | None:
        """The pipeline clock once PLAYING: only then is the base time final."""
        while not self.stopped.is_set():
            _, state, _ = self.appsrc.get_state(0)
            clock = self.appsrc.get_clock()
            if state == Gst.State.PLAYING and clock is not None:
                return clock
            self.stopped.wait(0.01)
        return None

    def _push(self, unit: AccessUnit, offset: int) -> bool:
        buf = Gst.Buffer.new_wrapped(unit.data)
        buf.pts = offset + unit.pts
        buf.dts = offset + unit.dts
        buf.duration = unit.duration
        if unit.delta:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        result = self.appsrc.push_buffer(buf)
        if result != Gst.FlowReturn.OK:
            log.info("%s: feeder ends (%s)", self.clip.name, result.value_nick)
            return False
        return True


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
    """A shared factory: one pipeline and one feeder per path, however many clients."""

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.set_shared(True)
        caps = clip.caps.replace('"', '\\"')
        self.set_launch(
            f'( appsrc name=src is-live=true format=time do-timestamp=false caps="{caps}" '
            "max-bytes=0 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        feeder = Feeder(self.clip, appsrc)
        media.connect("unprepared", lambda _media: feeder.stopped.set())
        feeder.start()
        log.info("%s: media configured, feeding", self.clip.name)


def build_server(
    port: int, clips: list[Clip], user: str | None, password: str | None
) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range("127.0.0.1", "127.0.0.1", *UDP_PORT_RANGE, 0)
    if user is not None:
        server.set_auth(_basic_auth(user, password or ""))
    mounts = server.get_mount_points()
    for clip in clips:
        factory = LoopingFactory(clip)
        factory.set_address_pool(pool)
        if user is not None:
            role = Gst.Structure.from_string(
                "viewer, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )[0]
            factory.add_role_from_structure(role)
        mounts.add_factory(f"/{clip.name}", factory)
    return server


def _basic_auth(user: str, password: str) -> GstRtspServer.RTSPAuth:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    return auth


def _parse_path(spec: str) -> tuple[str, Path]:
    name, sep, file = spec.partition("=")
    name = name.strip("/")
    if not sep or not name or not file:
        raise argparse.ArgumentTypeError(f"expected name=/file.mp4, got {spec!r}")
    return name, Path(file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--path", type=_parse_path, action="append", required=True,
                        metavar="NAME=FILE", help="serve FILE (H.264) at rtsp://.../NAME")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    Gst.init(None)
    clips = [load_clip(name, file) for name, file in args.path]
    server = build_server(args.port, clips, args.user, args.password)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    ready = {"event": "ready", "port": server.get_bound_port(),
             "paths": [c.name for c in clips], "time": time.time()}
    print(json.dumps(ready), flush=True)
    loop.run()
    log.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
