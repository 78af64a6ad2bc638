"""Video files, GIFs and network cameras (RTSP & co.) decoded with PyAV."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import cast
from urllib.parse import urlsplit

import av
import av.error

from gridwatch.ingest.counters import CameraCounters
from gridwatch.ingest.errors import SourceError, classify
from gridwatch.ingest.frame import Frame
from gridwatch.ingest.packet_tap import PacketSink
from gridwatch.ingest.source import MediaClock, Pacer, Source
from gridwatch.ingest.state import CameraState
from gridwatch.settings.stream import StreamSettings

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1 / 25
MAX_GOP_BYTES = 16 * 1024 * 1024
"""Packets since the last keyframe kept in keyframes-only mode (a 2 s GOP at 4 Mbit/s is
1 MB); a longer GOP is not kept, and a switch to every frame then waits for a keyframe."""


class AvSource(Source):
    """One PyAV container and its first video stream.

    Opened in the constructor so a bad URL fails at `open_source` with a classified
    `SourceError`; files with `loop=True` are re-opened at the end rather than seeked,
    which works the same for every container (GIF included).
    """

    def __init__(self, uri: str, options: StreamSettings, camera_id: str = "",
                 counters: CameraCounters | None = None, *, live: bool) -> None:
        super().__init__(uri, options, camera_id, counters)
        self.live = live
        self._uri = uri
        self._decoder: av.VideoCodecContext | None = None
        self._decoder_keyframes_only: bool | None = None
        self._gop: list[av.Packet] = []
        self._gop_bytes = 0
        self._container = self._open()
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self._clock = MediaClock(1 / float(rate) if rate else DEFAULT_INTERVAL_S)
        self._pacer = Pacer(self._interrupted) if options.realtime and not live else None
        self._index = 0
        self._delivered = False
        self._packets: PacketSink | None = None
        self._wall_anchor: float | None = None

    def _av_options(self) -> tuple[dict[str, str], tuple[float, float] | None]:
        if not self.live:
            return {}, None
        opts: dict[str, str] = {}
        if urlsplit(self._uri).scheme.lower() in ("rtsp", "rtsps"):
            opts |= {"rtsp_transport": self.options.transport, "allowed_media_types": "video"}
        if self.options.low_latency:
            opts |= {"fflags": "nobuffer", "probesize": str(self.options.probe_size),
                     "analyzeduration": str(int(self.options.analyze_duration_s * 1e6))}
        return opts, (self.options.open_timeout_s, self.options.read_timeout_s)

    def _open(self) -> av.container.InputContainer:
        container_options, timeout = self._av_options()
        started = time.monotonic()
        try:
            container = av.open(self._uri, container_options=container_options,
                                timeout=timeout)
        except (av.FFmpegError, OSError) as exc:
            raise self._open_error(exc, time.monotonic() - started) from None
        if not container.streams.video:
            container.close()
            raise SourceError(CameraState.UNSUPPORTED, f"no video stream in {self.display_uri}")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            container.close()
            raise SourceError(CameraState.UNSUPPORTED,
                              f"no decoder for the video codec of {self.display_uri}")
        self._close_decoder()
        log.debug("%s: opened %s in %.2f s", self.camera_id, self.display_uri,
                  time.monotonic() - started)
        return container

    def _open_error(self, exc: BaseException, elapsed: float) -> SourceError:
        # PyAV's interrupt during the RTSP handshake surfaces as InvalidDataError, which
        # would read as "unsupported": a failure that took the whole open timeout is a
        # camera that did not answer.
        timeout = self.options.open_timeout_s
        if self.live and elapsed >= timeout * 0.95:
            return SourceError(CameraState.OFFLINE,
                               f"no answer from {self.display_uri} within {timeout:g} s")
        error = classify(exc, connected=False)
        return SourceError(error.state, f"{self.display_uri}: {error.reason}")

    def record_packets(self, sink: PacketSink | None) -> None:
        """Hand every demuxed video packet to `sink` (evidence clips, live viewers),
        keyframes-only mode included: packets are demuxed either way, only their decoding
        is skipped."""
        self._packets = sink

    def frames(self) -> Iterator[Frame]:
        while True:
            yield from self._one_pass()
            if self.live or not self.options.loop or self._interrupted.is_set():
                return
            self._container.close()
            self._container = self._open()
            self._clock.restart()

    def _one_pass(self) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        packets = self._container.demux(stream)
        buffer, counters = self._packets, self.counters
        if buffer is not None:
            buffer.begin(stream)
            self._wall_anchor = None
        # Runs for every packet (25 a second a camera, most of them never decoded in
        # keyframes-only mode): calls are kept out of the common path.
        while not self._interrupted.is_set():
            try:
                packet = next(packets, None)
            except (av.FFmpegError, OSError) as exc:
                raise self._read_error(exc) from None
            if packet is None:
                return
            size = packet.size
            if size:
                counters.packet(size)
                if buffer is not None:
                    buffer.push(packet, time.time() if self._pacer is None
                                else self._paced_wall(packet))
            try:
                decoded = self._decode(stream, packet)
            except av.FFmpegError as exc:
                # Damaged data: the decoder resynchronises at the next good picture.
                self.counters.decode_errors += 1
                log.debug("%s: decode error: %s", self.camera_id, type(exc).__name__)
                continue
            for video_frame in decoded:
                frame = self._frame(video_frame)
                if self._pacer is not None and not self._pacer.wait(frame.t):
                    return
                self.counters.frame()
                self._delivered = True
                yield frame

    def _paced_wall(self, packet: av.Packet) -> float:
        """When a packet of a file paced like a camera was due (a camera's packet is dated
        when it arrives).

        A paced file in keyframes-only mode demuxes a GOP's other packets in a burst right
        after its keyframe (only decoded frames wait for their time), which would date them
        up to a GOP early; a camera sends them in real time, as the timestamps say.
        """
        now = time.time()
        if packet.dts is None or packet.time_base is None:
            return now
        media = float(packet.dts * packet.time_base)
        if self._wall_anchor is None:
            self._wall_anchor = now - media
        return max(now, self._wall_anchor + media)

    def _read_error(self, exc: BaseException) -> SourceError:
        error = classify(exc, connected=self._delivered)
        return SourceError(error.state, f"{self.display_uri}: {error.reason}")

    def _decode(self, stream: av.video.stream.VideoStream,
                packet: av.Packet) -> list[av.VideoFrame]:
        decoder = self._decoder
        if decoder is None or self._decoder_keyframes_only != self._keyframes_only:
            decoder = self._switch_decoder(stream, packet)
        if self._keyframes_only:
            self._remember(packet)
        decoded = decoder.decode(packet)
        if decoded:
            self.awaiting_keyframe = False
        return decoded

    def _switch_decoder(self, stream: av.video.stream.VideoStream,
                        packet: av.Packet) -> av.VideoCodecContext:
        """A fresh decoder for the current mode (the first one, or after a switch of mode).

        A decoder that skipped the P-frames holds no valid references for them: switched to
        every frame mid-GOP it puts out pictures 13-18 grey levels off until the next
        keyframe (measured), which motion detection would take for movement. A fresh H.264
        decoder puts out nothing before a keyframe, so it is first given the packets since
        the last one (kept in keyframes-only mode): active mode starts at once, with correct
        pictures, for the price of decoding part of one GOP.
        """
        keyframes_only = self._keyframes_only
        switching_to_every_frame = self._decoder is not None and not keyframes_only
        self._decoder = self._new_decoder(stream, keyframes_only)
        self._decoder_keyframes_only = keyframes_only
        self.awaiting_keyframe = True
        if switching_to_every_frame and self._gop and not packet.is_keyframe:
            for earlier in self._gop:
                try:
                    self._decoder.decode(earlier)
                except av.FFmpegError:
                    self.counters.decode_errors += 1
        self._forget_gop()
        return self._decoder

    def _remember(self, packet: av.Packet) -> None:
        """Keep the packets of the current GOP, from its keyframe on."""
        if packet.is_keyframe:
            self._gop, self._gop_bytes = [packet], packet.size
        elif self._gop:
            self._gop_bytes += packet.size
            if self._gop_bytes > MAX_GOP_BYTES:
                self._forget_gop()
            else:
                self._gop.append(packet)

    def _forget_gop(self) -> None:
        self._gop, self._gop_bytes = [], 0

    def _new_decoder(self, stream: av.video.stream.VideoStream,
                     keyframes_only: bool) -> av.VideoCodecContext:
        template = stream.codec_context
        decoder = cast(av.VideoCodecContext, av.CodecContext.create(template.name, "r"))
        decoder.extradata = template.extradata
        decoder.width, decoder.height = template.width, template.height
        if template.pix_fmt:
            decoder.pix_fmt = template.pix_fmt
        if keyframes_only and self.options.keyframe_skip_loop_filter:
            # Only intra pictures are decoded, so nothing is predicted from the skipped
            # filtering and no error drifts from frame to frame.
            decoder.options = {"skip_loop_filter": "all"}
        threads = self.options.decoder_threads
        decoder.thread_count = threads
        decoder.thread_type = "SLICE" if threads == 1 else "AUTO"
        decoder.skip_frame = "NONKEY" if keyframes_only else "DEFAULT"
        return decoder

    def _close_decoder(self) -> None:
        """Drop the decoder; PyAV frees it (and its picture buffers) with the last reference."""
        self._decoder = None
        self._decoder_keyframes_only = None
        self._forget_gop()

    def _frame(self, video_frame: av.VideoFrame) -> Frame:
        frame = Frame(
            camera_id=self.camera_id, index=self._index, t=self._clock.t(video_frame.time),
            wall=time.time(), keyframe=bool(video_frame.key_frame),
            width=video_frame.width, height=video_frame.height, video_frame=video_frame,
        )
        self._index += 1
        return frame

    def close(self) -> None:
        super().close()
        self._close_decoder()
        self._container.close()
