"""Evidence clips: a few seconds before and after an incident, cut from the camera's packets.

The camera keeps its last seconds of encoded video (`gridwatch.ingest.packet_buffer`, spooled to
disk by
default so they do not weigh on the worker's memory). When
an incident opens, its recorder copies the pre-roll from there at once (it would be evicted
before the post-roll is over), follows the stream until the post-roll has passed, and remuxes
the packets into an MP4 next to the snapshot: no decoding, no re-encoding, the camera's own
bytes. The file appears atomically, then `on_ready` is told, so whoever owns the incident
store records it: the camera worker, which sees events but not incidents, keys the clip by
the incident's dedup key (`follow_event`) and the main process, sharing the evidence
directory, attaches it with `IncidentManager.attach_clip_for`, which renames it after the
incident.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.detectors.events import dedup_key
from gridwatch.ingest.packet_buffer import (
    CLIP_FORMAT,
    BufferedPacket,
    PacketRingBuffer,
    SegmentSpool,
)
from gridwatch.settings.clips import ClipSettings

if TYPE_CHECKING:
    from gridwatch.detectors.events import Event
    from gridwatch.ingest.frame import Frame

log = logging.getLogger(__name__)

# Analysis runs behind the reader (and a decoder may hold pictures back): the buffer keeps
# this much more than the pre-roll so the pre-roll is still there when the event comes.
BUFFER_SLACK_S = 5.0


def packet_buffer(settings: ClipSettings, camera_id: str, evidence_dir: Path) -> PacketRingBuffer:
    """A camera's packet buffer long enough for these clips' pre-roll, in the store chosen
    (the spool defaulting to `spool` beside `evidence_dir`)."""
    spool = None
    if settings.buffer_store == "spool":
        root = settings.spool_dir or Path(evidence_dir).parent / "spool"
        spool = SegmentSpool(root / camera_id)
    return PacketRingBuffer(settings.pre_roll_s + BUFFER_SLACK_S, settings.buffer_max_bytes,
                            spool=spool)


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip written to disk; `path` is relative to the evidence directory.

    `event_wall` is the event the clip was started for; `start_wall`/`end_wall` are the
    arrival times of its first packet (a keyframe) and last packet.
    """

    key: str
    path: str
    event_wall: float
    start_wall: float
    end_wall: float
    duration_s: float
    packets: int
    size_bytes: int
    codec: str
    width: int
    height: int


class ClipRecorder:
    """Records the clips of one camera from its packet buffer, each on its own thread.

    `key` names a recording: the incident id in the process that owns the incident store,
    or the incident's dedup key in a camera worker that does not know the id yet. Events of
    the same key while it records push its end out (`extend`), up to `max_clip_s`.
    """

    def __init__(
        self,
        buffer: PacketRingBuffer,
        evidence: EvidenceWriter,
        settings: ClipSettings | None = None,
        *,
        on_ready: Callable[[Clip], None] | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.buffer = buffer
        self.evidence = evidence
        self.settings = settings or ClipSettings()
        self.on_ready = on_ready
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._active: dict[str, _Recording] = {}

    def start(self, key: str, wall: float, *, frame: Frame | None = None,
              name: str | None = None, day: datetime | None = None) -> str:
        """Record the clip of `key` around an event at Unix time `wall`.

        Given the event's `frame` (still holding its decoded picture), the clip is placed
        around that frame's own packet: a frame's wall time is when it was decoded, which
        can be seconds away from when its packets arrived (a decoder holding pictures back
        in keyframes-only mode, a file paced after decoding). Returns the path (relative to
        the evidence directory) the clip will have once ready: `YYYY/MM/DD/<name>.mp4` by
        `day` (default: the event's UTC day), `name` defaulting to one made from the key and
        time. A key already recording is extended instead.
        """
        with self._lock:
            if key in self._active:
                self._active[key].extend(wall)
                return self._active[key].path
            day = day or datetime.fromtimestamp(wall, UTC)
            path = EvidenceWriter.clip_path(name or _default_name(key, wall), day)
            self.evidence.path_of(path)
            recording = _Recording(self, key, path, wall, self._skew(wall, frame))
            self._active[key] = recording
        recording.start()
        return path

    def _skew(self, wall: float, frame: Frame | None) -> float:
        """Seconds from the frame's wall time to the arrival of its packet (0 unknown)."""
        video = frame.video_frame if frame is not None else None
        if video is None or video.pts is None:
            return 0.0
        packet = self.buffer.find(video.pts)
        return 0.0 if packet is None else packet.wall - wall

    def extend(self, key: str, wall: float) -> bool:
        """The condition of `key` still held (or ended) at `wall`: keep recording until the
        post-roll after it. False when `key` is not recording."""
        with self._lock:
            recording = self._active.get(key)
        if recording is None:
            return False
        recording.extend(wall)
        return True

    def follow_event(self, event: Event) -> None:
        """In a camera worker, which sees events but not incidents: a rule's start starts
        a clip keyed by the incident's dedup key, its updates and end extend it. The owner
        of the store then calls `IncidentManager.attach_clip_for(clip.key, clip.event_wall,
        clip.path)`; a start the manager merged into an incident that already has a clip
        is dropped there."""
        key = dedup_key(event.camera, event.zone, event.kind)
        if not self.extend(key, event.wall) and event.phase == "start":
            self.start(key, event.wall, frame=event.frame)

    @property
    def recording(self) -> list[str]:
        """Keys being recorded now."""
        with self._lock:
            return list(self._active)

    def finish(self, key: str | None = None) -> None:
        """Write `key`'s clip (every clip when None) with what has arrived, without waiting
        for the rest of the post-roll: the stream ended or the service stops."""
        with self._lock:
            targets = [r for k, r in self._active.items() if key is None or k == key]
        for recording in targets:
            recording.stopping.set()

    def close(self, timeout: float = 10.0) -> None:
        """Finish every clip and wait until they are written."""
        with self._lock:
            targets = list(self._active.values())
        self.finish()
        deadline = time.monotonic() + timeout
        for recording in targets:
            recording.join(max(0.0, deadline - time.monotonic()))

    def _ended(self, recording: _Recording, clip: Clip | None) -> None:
        with self._lock:
            self._active.pop(recording.key, None)
        if clip is not None and self.on_ready is not None:
            try:
                self.on_ready(clip)
            except Exception:
                log.exception("clip %s: on_ready failed", clip.path)


class _Recording(threading.Thread):
    """Collects one clip's packets: the pre-roll at once, then new packets as they come."""

    def __init__(self, recorder: ClipRecorder, key: str, path: str, event_wall: float,
                 skew: float) -> None:
        super().__init__(name=f"clip-{path.rsplit('/', 1)[-1]}", daemon=True)
        self.recorder = recorder
        self.key = key
        self.path = path
        self.event_wall = event_wall
        self.skew = skew
        self.stopping = threading.Event()
        self._until_lock = threading.Lock()
        self.settings = recorder.settings
        self._first_until = event_wall + skew + self.settings.post_roll_s
        self._until = self._first_until
        buffer = recorder.buffer
        self.packets: list[BufferedPacket] = []
        self._last_seq = buffer.last_seq
        self._complete = self._take(
            buffer.window(event_wall + skew - self.settings.pre_roll_s))

    def extend(self, event_wall: float) -> None:
        """An event of this clip at `event_wall` (the frames' clock): post-roll after it."""
        with self._until_lock:
            self._until = max(self._until, event_wall + self.skew + self.settings.post_roll_s)

    def _end_wall(self) -> float:
        """The post-roll's end on the packets' clock, capped at `max_clip_s` from the first
        packet (but never before the first event's own post-roll)."""
        with self._until_lock:
            until = self._until
        if not self.packets:
            return until
        cap = max(self._first_until, self.packets[0].wall + self.settings.max_clip_s)
        return min(until, cap)

    def _take(self, packets: Sequence[BufferedPacket]) -> bool:
        """Append what belongs to the clip; True once the clip is complete."""
        end = self._end_wall()
        for packet in packets:
            self._last_seq = packet.seq
            if not self.packets:
                if not packet.keyframe:
                    continue
            elif packet.params is not self.packets[-1].params and not packet.params.compatible(
                    self.packets[0].params):
                log.info("clip %s ends early: the stream changed to %r", self.path,
                         packet.params)
                return True
            if packet.wall > end:
                return True
            self.packets.append(packet)
            end = self._end_wall()
        return False

    def run(self) -> None:
        clip: Clip | None = None
        try:
            if not self._complete:
                self._collect()
            clip = self._write()
        except Exception:
            log.exception("clip %s of %s could not be written", self.path, self.key)
        finally:
            self.recorder._ended(self, clip)

    def _collect(self) -> None:
        buffer = self.recorder.buffer
        last_new = time.monotonic()
        while True:
            new, gap = buffer.after(self._last_seq)
            if gap and self.packets:
                log.warning("clip %s ends early: the buffer dropped packets before they were "
                            "copied", self.path)
                return
            if self._take(new):
                return
            now = time.monotonic()
            if new:
                last_new = now
            elif now - last_new >= self.settings.idle_timeout_s:
                log.info("clip %s: no packet for %.0f s, written as it is", self.path,
                         now - last_new)
                return
            if self.stopping.wait(self.recorder.poll_s):
                self._take(buffer.after(self._last_seq)[0])
                return

    def _write(self) -> Clip | None:
        if not self.packets:
            log.warning("clip %s: no video was buffered around the event", self.path)
            return None
        target = self.recorder.evidence.path_of(self.path)
        duration = write_mp4(self.packets, target)
        first, last = self.packets[0], self.packets[-1]
        clip = Clip(
            key=self.key, path=self.path, event_wall=self.event_wall, start_wall=first.wall,
            end_wall=last.wall, duration_s=round(duration, 3), packets=len(self.packets),
            size_bytes=target.stat().st_size, codec=first.params.codec,
            width=first.params.width, height=first.params.height,
        )
        log.info("clip %s: %.1f s, %d packets, %d bytes", clip.path, clip.duration_s,
                 clip.packets, clip.size_bytes)
        return clip


def write_mp4(packets: Sequence[BufferedPacket], target: Path) -> float:
    """Remux `packets` (starting at a keyframe, of compatible streams) into an MP4 at
    `target`, atomically; returns its duration in seconds.

    `+faststart` puts the index first so a browser plays the clip while it loads.
    """
    if not packets or not packets[0].keyframe:
        raise ValueError("a clip must start with a keyframe")
    params = packets[0].params
    time_base = params.time_base
    stamps = _timestamps(packets, time_base, params.rate)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        with av.open(tmp, "w", format=CLIP_FORMAT,
                     container_options={"movflags": "+faststart"}) as out:
            stream = out.add_stream_from_template(params.template)
            if params.codec == "hevc":
                # FFmpeg's default `hev1` is one Apple's players refuse; the browsers that
                # play H.265 at all accept `hvc1`.
                stream.codec_tag = "hvc1"
            for packet, (pts, dts, duration) in zip(packets, stamps, strict=True):
                muxed = av.Packet(packet.data)
                muxed.pts, muxed.dts, muxed.duration = pts, dts, duration
                muxed.time_base = time_base
                muxed.is_keyframe = packet.keyframe
                muxed.stream = stream
                out.mux(muxed)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    end = max(pts + duration for pts, _dts, duration in stamps)
    return float((end - stamps[0][0]) * time_base)


def _timestamps(packets: Sequence[BufferedPacket], time_base: Fraction,
                rate: Fraction | None) -> list[tuple[int, int, int]]:
    """(pts, dts, duration) in `time_base` for each packet, starting at dts 0.

    Decode order is kept: dts strictly increases, pts never precedes dts, and the gap
    between pts and dts (B-frame reordering) stays as the camera sent it. Where the source
    starts again (a reconnect, a file's loop, a timestamp jump) the next packets continue
    right after what came before; packets without timestamps follow the previous one.
    """
    frame = max(1, round(1 / (rate * time_base))) if rate else 1
    out: list[list[int]] = []
    shift: int | None = None
    params = None
    last_dts = last_pts = None
    for packet in packets:
        scale = packet.params.time_base / time_base
        dts = packet.dts if packet.dts is not None else packet.pts
        pts = packet.pts if packet.pts is not None else packet.dts
        step = round(packet.duration * scale)
        if dts is None or pts is None:
            new_dts = 0 if last_dts is None else last_dts + frame
            out.append([new_dts, new_dts, step])
            last_dts, last_pts = new_dts, max(new_dts, last_pts or new_dts)
            continue
        dts, pts = round(dts * scale), round(pts * scale)
        if shift is None or packet.params is not params or (
                last_dts is not None and dts + shift <= last_dts):
            # A new stream, or time ran backwards or stalled in this one: continue after
            # the last packet (and after the latest picture shown, so none overlaps).
            shift = -dts if last_dts is None else max(last_dts + frame - dts,
                                                      (last_pts or 0) + frame - pts)
            params = packet.params
        new_dts = dts + shift
        new_pts = max(pts + shift, new_dts)
        out.append([new_pts, new_dts, step])
        last_dts = new_dts
        last_pts = new_pts if last_pts is None else max(last_pts, new_pts)
    for current, following in zip(out, [*out[1:], None], strict=True):
        if not current[2]:
            gap = following[1] - current[1] if following is not None else 0
            current[2] = gap if gap > 0 else frame
    return [(pts, dts, duration) for pts, dts, duration in out]


def _default_name(key: str, wall: float) -> str:
    """A file name for a key that may hold any characters (a dedup key is JSON)."""
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12]
    return f"clip-{digest}-{round(wall * 1000)}"
