"""What accuracy costs: cameras per 2 cores with the detector on, as the service runs it; one
JSON object on stdout.

A realistic mix of real footage, each clip re-encoded once the way cameras send H.264 (no
B-frames, a keyframe every 2 s) and served as a never-ending live stream by the real RTSP test
server (`tests/support/rtsp.py`), one server path per camera:

- `quiet_water`: the fishing-boat clip from 11 s on (empty waves, a panning camera);
- `boats`: the whole fishing-boat clip (a boat crosses, then waves);
- `crowd`: the overhead hall with 35-50 people walking;
- `street`: the industrial road where a person with a cart crosses late.

Each camera gets the zones and rules of the embedded default configuration's camera that
plays the same clip (`gridwatch/default_config.yaml`: `illegal_fishing` on the water, `crowd`
with 3x2 tiles on the hall floor, `presence` on the road), and the configuration's model,
analysis and clip settings, so the figures follow main when those defaults change. The cameras
run through the service's real worker path (`gridwatch.worker.shard.camera_analyzer`:
adaptive decoding, motion, periodic zone sweeps with their tiles, motion and track crops, the
detector, tracking, rules, evidence clips) in two worker processes, with this process in the
main process's place (`benchmarks/ingest_capacity.py`'s `Ingester`).

Measured in the same run, as CPU (user + system) of our processes per camera-second, the RTSP
server left out:

- watch only: the same mix of streams in watch mode with the motion stage alone (what
  `benchmarks/ingest_capacity.py` measures on its 1080p stream);
- detection on, per stream kind and for the mix: cameras per 2 cores, detector inferences per
  camera-second, detection latency (a frame's arrival in the worker to its detections in the
  main process) p50/p95, resident memory per camera;
- event-onset latency, p50/p95 per kind: from when the labelled condition starts
  (`benchmarks/labels`; or the camera's first frame when it joined the condition already
  holding) to the event in the main process. Where a camera is in its loop is found by matching
  its first preview picture against the clip's frames.

CPU time, not wall time, is the capacity measure; run it under `nice -n 10` on a shared machine
and compare the ratios of one run.

Usage: nice -n 10 .venv/bin/python benchmarks/city_load.py [--per-kind 2] [--window 20]
           [--mix-window 60] [--kinds quiet_water,boats,crowd,street]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from benchmarks.ingest_capacity import CORES, WORKERS, measure_config, motion_stage  # noqa: E402
from gridwatch.settings import GridwatchSettings, parse_config  # noqa: E402
from gridwatch.settings.loader import DEFAULT_CONFIG  # noqa: E402
from gridwatch.worker.messages import (  # noqa: E402
    EventFound,
    FrameAnalysed,
    Preview,
    WorkerMessage,
)
from gridwatch.worker.shard import camera_analyzer  # noqa: E402
from tests.support.rtsp import RtspTestServer, loop_clip  # noqa: E402

FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
LABELS = Path(__file__).resolve().parent / "labels"
GOP_S = 2.0
THUMB_WIDTH = 320
#: Share of the thumbnail's pixels, those that vary most over the loop, that placing compares.
TELLING_SHARE = 0.05
#: An event counts for a labelled interval if it starts at most this long after its end.
MATCH_SLACK_S = 5.0
#: Labelled intervals this close across the loop's seam are one condition.
SEAM_GAP_S = 1.0


@dataclass(frozen=True)
class StreamKind:
    """One kind of camera in the mix: its footage, and which default camera configures it."""

    name: str
    clip: str
    fps: float
    template: str
    labels: str | None
    start: float | None = None


KINDS = {k.name: k for k in (
    StreamKind("quiet_water", "fishing_boat_sea_640x360_30fps.mp4", 30, "demo:fishing_boat_sea",
               None, start=11.0),
    StreamKind("boats", "fishing_boat_sea_640x360_30fps.mp4", 30, "demo:fishing_boat_sea",
               "boat.yaml"),
    StreamKind("crowd", "crowd_hall_topdown_1280x720.avi", 25, "demo:crowd_hall",
               "hall_crowd.yaml"),
    StreamKind("street", "cctv_road_cart_320x240_3fps.mp4", 3, "demo:road_cart",
               "road_cart.yaml"),
)}


@dataclass
class Served:
    """A kind's served file, its keyframes as thumbnails (to place a camera's first picture,
    always a keyframe, in the loop), its loop period and its labelled condition intervals
    (clip seconds)."""

    kind: StreamKind
    file: Path
    times: list[float]
    thumbs: np.ndarray
    period_s: float
    conditions: list[tuple[float, float]]
    size: tuple[int, int]
    cooldown_s: float
    """The longest rule cooldown of the kind's zones: no new event that long after one ends."""
    telling: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.telling = telling_pixels(self.thumbs)


def serve_file(kind: StreamKind, cooldown_s: float = 0.0) -> Served:
    file = loop_clip(FOOTAGE / kind.clip, seconds=None, gop=round(GOP_S * kind.fps),
                     start=kind.start)
    times, thumbs, last = [], [], 0.0
    with av.open(str(file)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        for frame in container.decode(stream):
            last = float(frame.time or 0.0)
            if frame.key_frame:
                times.append(last)
                thumbs.append(_thumb(frame.to_ndarray(format="gray")))
    step = 1.0 / kind.fps
    conditions: list[tuple[float, float]] = []
    if kind.labels:
        labels = yaml.safe_load((LABELS / kind.labels).read_text(encoding="utf-8"))
        conditions = [(float(e["start"]), float(e["end"])) for e in labels["events"]]
    return Served(kind, file, times, np.stack(thumbs), last + step, conditions, size,
                  cooldown_s)


def _thumb(gray: np.ndarray) -> np.ndarray:
    size = (THUMB_WIDTH, round(THUMB_WIDTH * gray.shape[0] / gray.shape[1]))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def telling_pixels(thumbs: np.ndarray) -> np.ndarray:
    """The pixels that tell keyframes apart (a burned-in clock, what moves): on a static
    scene the rest is the same in every keyframe and only adds the preview's JPEG noise."""
    spread = thumbs.std(axis=0)
    return spread >= np.quantile(spread, 1 - TELLING_SHARE)


# --- what the main process receives --------------------------------------------------------


@dataclass
class CameraLog:
    frames: list[tuple[float, float]] = field(default_factory=list)
    previews: list[tuple[float, bytes]] = field(default_factory=list)
    starts: list[tuple[float, float]] = field(default_factory=list)
    """(media time, receipt Unix time) of each event start."""


class Observer:
    """Frames' media and wall times, previews and event starts per camera, as received."""

    def __init__(self) -> None:
        self.cameras: dict[str, CameraLog] = {}
        self._lock = threading.Lock()

    def __call__(self, message: WorkerMessage) -> None:
        now = time.time()
        with self._lock:
            if isinstance(message, FrameAnalysed):
                log = self.cameras.setdefault(message.camera, CameraLog())
                log.frames.append((message.frame.t, message.frame.wall))
            elif isinstance(message, Preview):
                log = self.cameras.setdefault(message.camera, CameraLog())
                log.previews.append((message.wall, message.jpeg))
            elif isinstance(message, EventFound) and message.event.phase == "start":
                log = self.cameras.setdefault(message.camera, CameraLog())
                log.starts.append((message.event.t, now))


def loop_phase(log: CameraLog, served: Served) -> tuple[float, float, float] | None:
    """(clip seconds minus media time, median wall minus media time, how much better the
    best match is than the next) of a camera, from its first preview matched to the clip's
    keyframes; None without a preview or frames."""
    if not log.frames or not log.previews:
        return None
    wall_minus_t = statistics.median(w - t for t, w in log.frames)
    wall, jpeg = log.previews[0]
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    t = next((t for t, w in log.frames if w == wall), wall - wall_minus_t)
    error = np.abs(served.thumbs - _thumb(gray))[:, served.telling].mean(axis=1)
    best, second = np.sort(error)[:2] if len(error) > 1 else (error[0], np.inf)
    margin = float(second / best) if best > 0 else float("inf")
    return served.times[int(np.argmin(error))] - t, wall_minus_t, margin


def condition_times(served: Served, start: float, end: float) -> list[tuple[float, float]]:
    """The labelled intervals in looped clip seconds that overlap [start, end], one interval
    where the condition runs on over the loop's seam (the crowd is always there)."""
    first, last = int(start // served.period_s), int(end // served.period_s)
    spans = sorted((a + n * served.period_s, b + n * served.period_s)
                   for n in range(first, last + 1) for a, b in served.conditions)
    merged: list[tuple[float, float]] = []
    for a, b in spans:
        if merged and a - merged[-1][1] <= SEAM_GAP_S:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if b >= start and a <= end]


def onsets(log: CameraLog, served: Served) -> dict[str, Any]:
    """Event-onset latencies of one camera: each labelled interval seen while it streamed
    against the first event start within it (or `MATCH_SLACK_S` after it)."""
    phase = loop_phase(log, served)
    if phase is None or not served.conditions:
        return {"onsets_s": [], "missed": 0, "in_cooldown": 0,
                "unmatched_starts": len(log.starts), "phase_margins": []}
    offset, wall_minus_t, margin = phase
    first_t, last_t = log.frames[0][0], log.frames[-1][0]
    found, missed, in_cooldown, used = [], 0, 0, set()
    quiet_until = -float("inf")
    for t0, t1 in condition_times(served, first_t + offset, last_t + offset):
        joined = t0 - offset < first_t
        t0, t1 = max(t0 - offset, first_t), t1 - offset
        match = next((i for i, (t, _) in enumerate(log.starts)
                      if i not in used and t0 - GOP_S <= t <= t1 + MATCH_SLACK_S), None)
        if match is None:
            # A condition the camera joined late may end before the rule's dwell is met.
            if t0 < quiet_until:
                in_cooldown += 1
            elif not joined:
                missed += t1 + MATCH_SLACK_S < last_t
            continue
        used.add(match)
        found.append(log.starts[match][1] - (t0 + wall_minus_t))
        quiet_until = t1 + MATCH_SLACK_S + served.cooldown_s
    return {"onsets_s": found, "missed": missed, "in_cooldown": in_cooldown,
            "unmatched_starts": len(log.starts) - len(used), "phase_margins": [margin]}


# --- configuration ---------------------------------------------------------------------------


def default_config() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def rule_cooldowns() -> dict[str, float]:
    """The longest rule cooldown of each default camera's zones, by the camera's URL."""
    config = parse_config(default_config(), str(DEFAULT_CONFIG))
    return {camera.url: max((float(getattr(rule, "cooldown_s", 0.0)) for zone in camera.zones
                             for rule in zone.rules), default=0.0)
            for camera in config.cameras}


def city_config(cameras: list[tuple[str, str, StreamKind]], root: Path, watch_only: bool
                ) -> GridwatchSettings:
    """The embedded default configuration with `cameras` (id, URL, kind) in place of its demo
    cameras, each with the zones of the demo camera playing the same clip; watch only: every
    camera in watch mode (the motion stage runs instead of the core)."""
    data = default_config()
    templates = {c["url"]: c for c in data["cameras"]}
    entries = []
    for camera_id, url, kind in cameras:
        entry = copy.deepcopy(templates[kind.template])
        entry.update(id=camera_id, name=f"{kind.name} {camera_id}", url=url)
        if watch_only:
            entry["analysis"] = {"mode": "watch"}
        entries.append(entry)
    data.update(cameras=entries, workers={"count": WORKERS},
                storage={"url": f"sqlite:///{root}/gw.db", "evidence_dir": str(root / "evidence")})
    return parse_config(data, "city_load")


# --- the runs ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def run(server: RtspTestServer, served: dict[str, Served], counts: dict[str, int],
        window: float, watch_only: bool) -> dict[str, Any]:
    """One measurement of the cameras `counts` (kind: how many); watch only or detection on."""
    cameras = [(f"{name}-{i}", server.url(f"{name}-{i}"), served[name].kind)
               for name, k in counts.items() for i in range(k)]
    observer = Observer()
    result = measure_config(lambda root: city_config(cameras, root, watch_only), window, server,
                            analysis=motion_stage if watch_only else camera_analyzer,
                            listener=observer)
    k, wall, measured = result["k"], result["window_s"], result["cpu_ms_per_camera_s"]
    per_camera = result["per_camera"].values()
    analysed = sum(c["analysed"] for c in per_camera)
    dropped = sum(c["frames_dropped"] for c in per_camera)
    dropped_share = dropped / (analysed + dropped) if analysed else 1.0
    kept_up = result["online"] and dropped_share <= 0.01 and result["worker_restarts"] == 0
    # A saturated analysis thread drops due frames and so spends less than the schedule
    # asks for: the cost of the whole schedule is extrapolated from the frames it did.
    cost = measured if kept_up or not analysed else round(
        measured * (analysed + dropped) / analysed, 3)
    lags = result["analysis_lags_s"]
    out: dict[str, Any] = {
        "cameras": dict(counts), "k": k, "window_s": wall, "online": result["online"],
        "cpu_ms_per_camera_s": cost, "cpu_ms_per_camera_s_measured": measured,
        "cameras_2cores": round(CORES * 1000 / cost, 1) if cost else None,
        "analysed_per_camera_s": round(analysed / (k * wall), 3),
        "dropped_of_due": round(dropped_share, 4),
        "kept_up": kept_up,
        "worker_restarts": result["worker_restarts"],
        "server_cpu_ms_per_camera_s": result["server_cpu_ms_per_camera_s"],
        "workers_rss_mib": round(result["workers_rss_bytes"] / 2**20, 1),
        "detection_latency_s": {"p50": percentile(lags, 0.5), "p95": percentile(lags, 0.95),
                                "frames": len(lags)},
    }
    if watch_only:
        return out
    before, after = result["costs"]
    inferences = sum(_inferences(after.get(c)) - _inferences(before.get(c)) for c in after)
    out["detector_inferences_per_camera_s"] = round(inferences / (k * wall), 3)
    onsets_by_kind: dict[str, dict[str, Any]] = {}
    for camera, log in observer.cameras.items():
        kind = camera.rsplit("-", 1)[0]
        bucket = onsets_by_kind.setdefault(kind, {})
        for key, value in onsets(log, served[kind]).items():
            bucket[key] = bucket.get(key, [] if isinstance(value, list) else 0) + value
    out["onsets"] = onsets_by_kind
    return out


def _inferences(costs: dict[str, Any] | None) -> int:
    return int(costs["core"]["inferences"]) if costs else 0


def onset_summary(runs: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    """Event-onset latency per kind over every detection run of this benchmark."""
    out = {}
    for kind in kinds:
        got: dict[str, Any] = {"onsets_s": [], "missed": 0, "in_cooldown": 0,
                               "unmatched_starts": 0, "phase_margins": []}
        for result in runs:
            for key, value in result["onsets"].get(kind, {}).items():
                got[key] += value
        values = got["onsets_s"]
        out[kind] = {"p50_s": percentile(values, 0.5), "p95_s": percentile(values, 0.95),
                     "onsets": len(values), "labelled_intervals_without_event": got["missed"],
                     "labelled_intervals_in_rule_cooldown": got["in_cooldown"],
                     "event_starts_outside_labels": got["unmatched_starts"],
                     "labelled": KINDS[kind].labels is not None,
                     "worst_phase_match_margin": round(min(got["phase_margins"]), 2)
                     if got["phase_margins"] else None}
    return out


def memory(mix: dict[str, Any], per_kind: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Workers' resident memory split into a fixed part (interpreters, libraries, each
    worker's detector) and a part per camera of each kind: every per-kind run holds the fixed
    part once, and the mix holds it once for all kinds together. Runs with fewer cameras than
    workers start fewer workers: then only the mix's memory over its cameras is given."""
    if len(per_kind) < 2 or min(r["k"] for r in [mix, *per_kind.values()]) < WORKERS:
        return {"workers_fixed_mib": None,
                "per_camera_mib": {"mix": round(mix["workers_rss_mib"] / mix["k"], 2)}}
    fixed = (sum(r["workers_rss_mib"] for r in per_kind.values()) - mix["workers_rss_mib"]) / (
        len(per_kind) - 1)
    return {"workers_fixed_mib": round(fixed, 1), "per_camera_mib": {
        "mix": round((mix["workers_rss_mib"] - fixed) / mix["k"], 2),
        **{k: round((r["workers_rss_mib"] - fixed) / r["k"], 2) for k, r in per_kind.items()}}}


def parse_mix(text: str, kinds: list[str], per_kind: int) -> dict[str, int]:
    """`kind=count,...` (kinds left out: none of them); empty: `per_kind` of each kind."""
    if not text:
        return {k: per_kind for k in kinds}
    mix = {}
    for part in text.split(","):
        name, _, count = part.partition("=")
        if name not in kinds or not count.isdigit():
            raise ValueError(f"--mix: {part!r} is not KIND=COUNT with KIND one of "
                             f"{', '.join(kinds)}")
        mix[name] = int(count)
    return {k: v for k, v in mix.items() if v}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"stream kinds measured, from {', '.join(KINDS)}")
    parser.add_argument("--per-kind", type=int, default=2, help="cameras of each kind's run")
    parser.add_argument("--mix", default="quiet_water=3,boats=2,crowd=1,street=2",
                        help="cameras of each kind in the mix (empty: --per-kind of each)")
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds measured per run (watch only, each kind)")
    parser.add_argument("--mix-window", type=float, default=45.0,
                        help="seconds measured for the mix with detection on")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error(f"--kinds: unknown {', '.join(unknown) or '(none given)'}; "
                     f"known: {', '.join(KINDS)}")
    try:
        mix = parse_mix(args.mix, kinds, args.per_kind)
    except ValueError as exc:
        parser.error(str(exc))
    if not mix:
        parser.error("--mix: no cameras")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(processName)s %(name)s: %(message)s")
    started = time.monotonic()
    load_start = os.getloadavg()
    cooldowns = rule_cooldowns()
    served = {k: serve_file(KINDS[k], cooldowns[KINDS[k].template]) for k in kinds}
    paths = {f"{k}-{i}": served[k].file for k in kinds
             for i in range(max(args.per_kind, mix.get(k, 0)))}
    defaults = default_config()
    with RtspTestServer(paths) as server:
        watch = run(server, served, mix, args.window, watch_only=True)
        detect_mix = run(server, served, mix, args.mix_window, watch_only=False)
        per_kind = {k: run(server, served, {k: args.per_kind}, args.window, watch_only=False)
                    for k in kinds}
    watch_cost = watch["cpu_ms_per_camera_s"]
    rss = memory(detect_mix, per_kind)
    runs = {"watch_only": watch, "mix": detect_mix, **per_kind}
    report: dict[str, Any] = {
        "benchmark": "city_load",
        "machine": {"cpus": os.cpu_count(), "load_avg_start": [round(x, 2) for x in load_start],
                    "load_avg_end": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "pyav": av.__version__},
        "setup": {
            "workers": WORKERS, "per_kind": args.per_kind, "mix": mix,
            "window_s": args.window, "mix_window_s": args.mix_window,
            "model": defaults.get("model"), "analysis": defaults.get("analysis"),
            "streams": {k: {"clip": s.kind.clip, "from_s": s.kind.start, "fps": s.kind.fps,
                            "size": list(s.size),
                            "gop_s": GOP_S, "loop_s": round(s.period_s, 2),
                            "configured_like": s.kind.template, "labels": s.kind.labels}
                        for k, s in served.items()},
            "cpu": "user+system of the workers and this (main) process per camera-second of "
                   "wall time, the RTSP server excluded"},
        "watch_only": {"cpu_ms_per_camera_s": watch_cost,
                       "cameras_2cores": watch["cameras_2cores"]},
        "detection_on": {
            "mix": {"cpu_ms_per_camera_s": detect_mix["cpu_ms_per_camera_s"],
                    "cameras_2cores": detect_mix["cameras_2cores"],
                    "over_watch_only": round(detect_mix["cpu_ms_per_camera_s"] / watch_cost, 2)
                    if watch_cost else None,
                    "kept_up": detect_mix["kept_up"]},
            "per_kind": {k: {"cpu_ms_per_camera_s": r["cpu_ms_per_camera_s"],
                             "cameras_2cores": r["cameras_2cores"], "kept_up": r["kept_up"]}
                         for k, r in per_kind.items()}},
        "detector_inferences_per_camera_s": {
            "mix": detect_mix["detector_inferences_per_camera_s"],
            **{k: r["detector_inferences_per_camera_s"] for k, r in per_kind.items()}},
        "detection_latency_s": {"mix": detect_mix["detection_latency_s"],
                                **{k: r["detection_latency_s"] for k, r in per_kind.items()}},
        "event_onset_latency_s": onset_summary([detect_mix, *per_kind.values()], kinds),
        "rss_mib_per_camera": rss["per_camera_mib"],
        "workers_fixed_rss_mib": rss["workers_fixed_mib"],
        "runs": {name: {k: v for k, v in r.items() if k != "onsets"} for name, r in runs.items()},
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
