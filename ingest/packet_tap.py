"""One camera connection, many consumers of its encoded packets: the packet tap.

The reader thread demuxes every video packet once; whoever needs the encoded stream (the
evidence clip buffer, a live viewer's streamer) is a `PacketSink` on the camera's
`PacketFanout`, so nobody opens the camera a second time and nothing is decoded for them.
A sink added while the camera streams is started (`begin`) on the reader thread with the
current stream before its first packet, so it never sees a packet of a stream it was not
told about.

`StreamDescription` and `EncodedPacket` are how encoded video crosses a process boundary
(worker to main process): plain bytes and numbers, picklable, no PyAV object.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av


class PacketSink(Protocol):
    """A consumer of a camera's demuxed packets; called on the camera's reader thread, so
    it must return at once (hand over, never wait)."""

    def begin(self, stream: av.video.stream.VideoStream) -> object:
        """A new stream starts (open, reconnect, loop): later packets belong to it."""

    def push(self, packet: av.Packet, wall: float) -> None:
        """One packet of the stream given to `begin`, arrived (or due) at Unix time `wall`."""


class PacketFanout:
    """Hands each packet of one camera to every sink; sinks come and go while it streams."""

    def __init__(self, *sinks: PacketSink) -> None:
        self._sinks: tuple[PacketSink, ...] = sinks
        self._joining: list[PacketSink] = []
        self._lock = threading.Lock()
        self._stream: av.video.stream.VideoStream | None = None

    def add(self, sink: PacketSink) -> None:
        """Start feeding `sink` from the reader's next packet on (any thread)."""
        with self._lock:
            self._joining.append(sink)

    def remove(self, sink: PacketSink) -> None:
        """Stop feeding `sink` (any thread); it may still get the packet being handed out."""
        with self._lock:
            self._joining = [s for s in self._joining if s is not sink]
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    @property
    def sinks(self) -> tuple[PacketSink, ...]:
        with self._lock:
            return (*self._sinks, *self._joining)

    def begin(self, stream: av.video.stream.VideoStream) -> None:
        with self._lock:
            self._stream = stream
            self._sinks, self._joining = (*self._sinks, *self._joining), []
            sinks = self._sinks
        for sink in sinks:
            sink.begin(stream)

    def push(self, packet: av.Packet, wall: float) -> None:
        if self._joining:
            self._admit()
        for sink in self._sinks:
            sink.push(packet, wall)

    def _admit(self) -> None:
        with self._lock:
            stream, joining = self._stream, self._joining
            if stream is None:
                return
            self._joining = []
            self._sinks = (*self._sinks, *joining)
        for sink in joining:
            sink.begin(stream)


@dataclass(frozen=True, slots=True)
class StreamDescription:
    """What a decoder or a WebRTC sender needs to know of an encoded stream before its
    packets. `extradata` holds the codec's headers when they travel out of band; it is
    empty when the packets carry them (H.264 converted to Annex B with SPS/PPS before each
    keyframe)."""

    camera_id: str
    codec: str
    profile: str | None
    width: int
    height: int
    b_frames: bool
    extradata: bytes
    time_base: Fraction
    rate: Fraction | None


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One access unit of the stream last described; `pts`/`dts` in its `time_base`."""

    data: bytes
    pts: int | None
    dts: int | None
    keyframe: bool
    wall: float

    def stamp(self) -> int | None:
        return self.pts if self.pts is not None else self.dts
