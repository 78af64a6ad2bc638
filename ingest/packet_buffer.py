"""The last seconds of a camera's encoded video, kept for evidence clips.

Keeping the packets as they came off the wire (not decoded frames) costs the stream's
bitrate and no CPU: 10 s of 1080p at 4 Mbit/s is 5 MB, where the same seconds decoded would
be 750 MB. A clip is then cut from these packets and remuxed, never re-encoded.

Where the packet bytes wait is the buffer's choice of store. In memory they are part of the
worker's resident memory, more than everything else a watched camera needs (docs/ingest.md).
Spooled (`SegmentSpool`), each GOP's bytes go to a file of their own in the camera's spool
directory and only their index stays in memory; an evicted GOP's file is unlinked at once,
and a reader (a clip recorder) gets copies holding the bytes of the packets it takes.
A file that lives 15 s is usually never written back to the disk at all (the kernel writes
dirty pages after ~30 s), so the spool costs page cache the kernel can reclaim under
pressure, not anonymous memory of the process: on tmpfs it would be RAM again.

The buffer is written by the camera's reader thread and read by clip recorders. The reader
only hands packets over (`push`); they are indexed, stored and evicted in batches
(`_settle`), by the reader every `SETTLE_PACKETS` packets or by whoever reads the buffer
first. Work done packet by packet runs with the caches cold from the decoder that ran in
between, and cost several times what the same code costs in a tight loop (measured in the
workers of `benchmarks/ingest_capacity.py`; figures in docs/ingest.md).
One lock guards the index; it is held to settle a batch (one spool write) or to copy what
a reader takes.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, cast

import av

log = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 15.0
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
CLIP_FORMAT = "mp4"
SETTLE_PACKETS = 16
"""Packets handed over between two batches (0.64 s at 25 fps, ~320 kB at 4 Mbit/s)."""
FLUSH_PACKETS = 64
"""A spool segment writes at most this many packets at once (far below IOV_MAX)."""


class StreamParams:
    """The codec parameters of one opened stream: what a muxer needs besides the packets.

    They are copied into a stream of a never-written MP4 container, because the input
    stream dies with its container (closed at every reconnect or loop) while clips cut from
    its packets are muxed later; that stream is the template the clip's stream is made from
    (`OutputContainer.add_stream_from_template`), so every field FFmpeg keeps in the codec
    parameters (SPS/PPS or VPS/SPS/PPS extradata, profile, colour, ...) carries over.
    """

    _generations = itertools.count(1)

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.generation = next(self._generations)
        ctx = stream.codec_context
        self.codec = ctx.name
        self.width = ctx.width
        self.height = ctx.height
        self.extradata = bytes(ctx.extradata or b"")
        self.time_base: Fraction = stream.time_base or Fraction(1, 90_000)
        self.rate: Fraction | None = stream.average_rate or stream.guessed_rate
        self._holder = av.open(io.BytesIO(), "w", format=CLIP_FORMAT)
        # Raises ValueError when MP4 cannot carry the codec (e.g. GIF, MJPEG).
        self.template = self._holder.add_stream_from_template(stream)

    def compatible(self, other: StreamParams) -> bool:
        """True when packets of `other` can continue a clip of this stream (same codec,
        size and headers), as after a reconnect to the same camera or a file's loop."""
        return (self.codec, self.width, self.height, self.extradata) == (
            other.codec, other.width, other.height, other.extradata)

    def __repr__(self) -> str:
        return (f"StreamParams(#{self.generation} {self.codec} {self.width}x{self.height}, "
                f"time_base={self.time_base})")


class Segment:
    """One GOP's packet bytes in a spool file, appended by the camera's reader.

    Appended packets are written when their batch is settled (`flush`, one `pwritev`): the
    write releases the GIL, and doing that per packet, with dozens of reader threads in a
    worker, cost more CPU than the write itself. Only the GOP being written keeps its file
    open (`seal` writes the rest and closes it when the next GOP starts), so a camera holds
    one descriptor however many GOPs it buffers; the bytes are read back by path, which is
    why readers copy what they take while the buffer's lock keeps the GOP from being
    evicted (`PacketRingBuffer.window`). Every method runs under that lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(
            path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.size = 0
        self._written = 0
        self._pending: list[bytes | av.Packet] = []

    def append(self, data: bytes | av.Packet, size: int) -> int:
        """Append `data` (any buffer of `size` bytes; kept by reference until written);
        returns its offset. Raises OSError (disk full...) when a batch cannot be written."""
        if self._fd is None:
            raise OSError(f"{self.path} is sealed")
        offset = self.size
        self._pending.append(data)
        self.size += size
        if len(self._pending) >= FLUSH_PACKETS:
            self.flush()
        return offset

    def flush(self) -> None:
        """Write the appended packets not written yet."""
        if not self._pending:
            return
        if self._fd is None:
            raise OSError(f"{self.path} is sealed")
        want = self.size - self._written
        written = os.pwritev(self._fd, self._pending, self._written)
        if written != want:
            raise OSError(f"short write to {self.path} ({written} of {want} bytes)")
        self._written = self.size
        self._pending.clear()

    def seal(self) -> None:
        """The GOP is complete: write the rest and close the file; it is read back by path."""
        if self._fd is not None:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = None

    def read(self, offset: int, length: int) -> bytes:
        if offset + length > self._written:
            self.flush()
        fd = self._fd if self._fd is not None else os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, length, offset)
        finally:
            if fd != self._fd:
                os.close(fd)
        if len(data) != length:
            raise OSError(f"{self.path}: {len(data)} of {length} bytes at {offset}")
        return data

    def unlink(self) -> None:
        """Drop the segment, written or not."""
        self._pending.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


class SegmentSpool:
    """A camera's spool directory: one `Segment` file per GOP, named by its first packet.

    Files left by a process that died (SIGKILL leaves no chance to unlink) are removed when
    the spool is opened: a camera has one reader at a time, and its packets died with it.
    """

    SUFFIX = ".gop"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f"*{self.SUFFIX}"):
            stale.unlink(missing_ok=True)

    def segment(self, seq: int) -> Segment:
        return Segment(self.directory / f"{seq:012d}{self.SUFFIX}")

    def close(self) -> None:
        """Remove the directory once the camera is stopped (its files are unlinked)."""
        try:
            self.directory.rmdir()
        except OSError as exc:
            log.debug("spool %s left in place: %s", self.directory, exc)


class BufferedPacket(NamedTuple):
    """One encoded packet as demuxed; `pts`/`dts`/`duration` in `params.time_base` units,
    `wall` the Unix time it arrived (for paced files: when it was due). Its bytes are held
    in `store`: the bytes themselves, or, inside a spooled buffer only, the segment they
    were written to at `offset` (what readers get always holds the bytes). A named tuple,
    not a frozen dataclass: one is made per packet, and it costs a third as much."""

    seq: int
    store: bytes | Segment
    offset: int
    size: int
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    wall: float
    params: StreamParams

    @property
    def data(self) -> bytes:
        if isinstance(self.store, bytes):
            return self.store
        return self.store.read(self.offset, self.size)


class PacketRingBuffer:
    """Encoded video packets of one camera for the last `max_seconds`, at most `max_bytes`,
    in memory or, given a `spool`, in its segment files (see the module docstring).

    Eviction drops whole GOPs from the front, and only once the next keyframe is itself
    older than `max_seconds`: the buffer therefore always starts at a keyframe and covers at
    least `max_seconds` (up to one GOP more) unless `max_bytes` cuts it shorter. Memory is
    bounded by `max_bytes` plus the packets not settled yet (`SETTLE_PACKETS`) whatever the
    stream does: a GOP larger than the whole budget empties the buffer until the next
    keyframe. Packets that cannot be decoded from the buffer (before the first keyframe of
    a stream) are not kept.
    """

    def __init__(self, max_seconds: float = DEFAULT_MAX_SECONDS,
                 max_bytes: int = DEFAULT_MAX_BYTES, spool: SegmentSpool | None = None) -> None:
        if not max_seconds > 0:
            raise ValueError(f"max_seconds: {max_seconds} must be more than 0")
        if not max_bytes > 0:
            raise ValueError(f"max_bytes: {max_bytes} must be more than 0")
        self.max_seconds = float(max_seconds)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._incoming: deque[tuple[av.Packet, float]] = deque()
        self._packets: deque[BufferedPacket] = deque()
        self._keys: deque[int] = deque()
        self._spool = spool
        self._segments: deque[Segment] = deque()
        self._bytes = 0
        self._next_seq = 0
        self._params: StreamParams | None = None
        self._keyed = False
        self._unsupported: str | None = None
        self.pushed = 0
        self.skipped = 0
        self.evicted_bytes = 0
        self.overflows = 0
        self.spool_errors = 0

    def __repr__(self) -> str:
        return (f"PacketRingBuffer({len(self._packets)} packets, {self._bytes} bytes, "
                f"max {self.max_seconds:g} s / {self.max_bytes} bytes)")

    # --- writer (the camera's reader thread) ---------------------------------------------

    def begin(self, stream: av.video.stream.VideoStream) -> StreamParams | None:
        """A new stream starts (open, reconnect, loop): later packets belong to it.

        Returns None when MP4 cannot carry the stream's codec; its packets are then not kept.
        """
        try:
            params = StreamParams(stream)
        except (ValueError, av.FFmpegError) as exc:
            reason = f"{stream.codec_context.name}: {exc}"
            if reason != self._unsupported:
                log.info("no evidence clips for this stream (%s)", reason)
            self._unsupported, params = reason, None
        with self._settled():
            self._params = params
            self._keyed = False
        return params

    def push(self, packet: av.Packet, wall: float) -> None:
        """Hand over `packet` (of the stream given to `begin`) that arrived at `wall`; it is
        kept with the next batch. Called by the camera's reader thread only."""
        incoming = self._incoming
        incoming.append((packet, wall))
        if len(incoming) >= SETTLE_PACKETS:
            with self._lock:
                self._settle()

    @contextmanager
    def _settled(self) -> Iterator[None]:
        """Hold the lock over an index that has every packet handed over so far: what every
        reader of the buffer (and `begin`, before the stream changes) works on."""
        with self._lock:
            self._settle()
            yield

    def _settle(self) -> None:
        """Index and store the packets handed over so far; called under the lock."""
        incoming = self._incoming
        params = self._params
        if params is None:
            incoming.clear()
            return
        if not incoming:
            return
        # One stream's demuxed packets share its time base: checked once a batch.
        source_tb = incoming[0][0].time_base
        rescale = source_tb is not None and source_tb != params.time_base
        newest_wall = None
        while incoming:
            packet, wall = incoming.popleft()
            size = packet.size
            if not size:
                continue
            keyframe = packet.is_keyframe
            if not keyframe and not self._keyed:
                self.skipped += 1
                continue
            pts, dts, duration = packet.pts, packet.dts, packet.duration or 0
            if rescale:
                pts, dts = (_rescale(v, source_tb, params.time_base) for v in (pts, dts))
                duration = _rescale(duration, source_tb, params.time_base) or 0
            seq = self._next_seq
            try:
                store, offset = self._store(seq, packet, size, keyframe)
            except OSError as exc:
                self._spool_failed(exc)
                continue
            self._keyed = True
            self._packets.append(BufferedPacket(seq, store, offset, size, pts, dts,
                                                int(duration or 0), keyframe, wall, params))
            self._next_seq = seq + 1
            self._bytes += size
            if keyframe:
                self._keys.append(seq)
            self.pushed += 1
            newest_wall = wall
        if self._spool is not None and self._segments:
            try:
                self._segments[-1].flush()
            except OSError as exc:
                self._spool_failed(exc)
        if newest_wall is not None:
            self._evict(newest_wall)

    def _store(self, seq: int, packet: av.Packet, size: int,
               keyframe: bool) -> tuple[bytes | Segment, int]:
        """Where the packet's bytes go: copied, or written straight from the packet to the
        spool segment of their GOP (a keyframe opens a new one)."""
        if self._spool is None:
            return bytes(packet), 0
        if keyframe or not self._segments:
            if self._segments:
                self._segments[-1].seal()
            self._segments.append(self._spool.segment(seq))
        segment = self._segments[-1]
        return segment, segment.append(packet, size)

    def _spool_failed(self, exc: OSError) -> None:
        """A write to the spool failed (disk full, directory gone): what is buffered stays
        readable, but the GOP being written has a hole, so it is dropped like an overflow
        and buffering starts again at the next keyframe."""
        self.spool_errors += 1
        if self.spool_errors == 1 or self.spool_errors % 1000 == 0:
            log.warning("evidence spool: %s (%d failed writes); clips lose this GOP", exc,
                        self.spool_errors)
        self._drop_all()

    def _evict(self, newest_wall: float) -> None:
        horizon = newest_wall - self.max_seconds
        while len(self._keys) >= 2 and (
            self._bytes > self.max_bytes or self._wall_of(self._keys[1]) <= horizon
        ):
            self._drop_until(self._keys[1])
            self._keys.popleft()
            self._release_segments(1)
        if self._bytes > self.max_bytes:
            # One GOP larger than the budget: nothing kept is decodable without its start.
            self.overflows += 1
            self._drop_all()

    def _drop_all(self) -> None:
        """Drop every packet and segment; keep nothing until the next keyframe."""
        self._drop_until(self._next_seq)
        self._keys.clear()
        self._release_segments(len(self._segments))
        self._keyed = False

    def _release_segments(self, count: int) -> None:
        """Unlink the files of the `count` oldest GOPs, whose packets were just dropped."""
        for _ in range(min(count, len(self._segments))):
            self._segments.popleft().unlink()

    def _wall_of(self, seq: int) -> float:
        return self._packets[seq - self._packets[0].seq].wall

    def _drop_until(self, seq: int) -> None:
        while self._packets and self._packets[0].seq < seq:
            gone = self._packets.popleft()
            self._bytes -= gone.size
            self.evicted_bytes += gone.size

    # --- readers -------------------------------------------------------------------------

    def window(self, since_wall: float) -> list[BufferedPacket]:
        """Packets from the keyframe at or before `since_wall` to the newest.

        When the buffer does not reach back that far, from its oldest packet (a keyframe).
        """
        with self._settled():
            start = 0
            base = self._packets[0].seq if self._packets else 0
            for seq in reversed(self._keys):
                if self._packets[seq - base].wall <= since_wall:
                    start = seq - base
                    break
            return self._loaded(itertools.islice(self._packets, start, None))

    def after(self, seq: int) -> tuple[list[BufferedPacket], bool]:
        """Packets newer than `seq`, and whether some between were evicted before this call
        (the caller fell behind: its copy has a hole)."""
        with self._settled():
            if not self._packets:
                return [], seq + 1 < self._next_seq
            first = self._packets[0].seq
            gap = first > seq + 1
            start = max(seq + 1 - first, 0)
            return self._loaded(itertools.islice(self._packets, start, None)), gap

    def _loaded(self, packets: Iterable[BufferedPacket]) -> list[BufferedPacket]:
        """Copies holding their bytes, read under the lock so no GOP is evicted meanwhile
        (a few MB from the page cache: milliseconds, once per clip)."""
        if self._spool is None:
            return list(packets)
        out: list[BufferedPacket] = []
        for segment, run in itertools.groupby(packets, key=lambda p: cast(Segment, p.store)):
            group = list(run)  # one GOP's packets: one read
            start, end = group[0].offset, group[-1].offset + group[-1].size
            blob = segment.read(start, end - start)
            for p in group:
                at = p.offset - start
                out.append(p._replace(store=blob[at:at + p.size], offset=0))
        return out

    def find(self, pts: int) -> BufferedPacket | None:
        """The newest packet with this presentation timestamp (a decoded frame's `pts`):
        where a frame the analysis saw lies in the buffer, whatever the clocks said."""
        with self._settled():
            return next((p for p in reversed(self._packets) if p.pts == pts), None)

    def close(self) -> None:
        """Drop every packet and the spool's files: the camera is stopped for good (clips
        being written hold copies of their packets)."""
        with self._lock:
            self._incoming.clear()
            self._drop_all()
        if self._spool is not None:
            self._spool.close()

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest packet kept so far (-1 before the first)."""
        with self._settled():
            return self._next_seq - 1

    @property
    def newest_wall(self) -> float | None:
        with self._settled():
            return self._packets[-1].wall if self._packets else None

    @property
    def size_bytes(self) -> int:
        with self._settled():
            return self._bytes

    def stats(self) -> dict[str, float | int | str | None]:
        """What the buffer holds and has dropped, for health pages and tests."""
        with self._settled():
            span = (self._packets[-1].wall - self._packets[0].wall) if self._packets else 0.0
            return {
                "packets": len(self._packets),
                "bytes": self._bytes,
                "seconds": round(span, 3),
                "max_seconds": self.max_seconds,
                "max_bytes": self.max_bytes,
                "pushed": self.pushed,
                "skipped": self.skipped,
                "evicted_bytes": self.evicted_bytes,
                "overflows": self.overflows,
                "store": "memory" if self._spool is None else "spool",
                "spool_errors": self.spool_errors,
                "codec": self._params.codec if self._params is not None else None,
            }


def _rescale(value: int | None, src: Fraction, dst: Fraction) -> int | None:
    return None if value is None else round(value * src / dst)
