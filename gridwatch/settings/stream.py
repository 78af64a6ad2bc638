"""How a camera's stream is opened, read, watched and retried, and which URLs may name one.

`NETWORK_SCHEMES` are the URL schemes ingest opens as network streams; with `file` they are
what a camera URL may use (a path without a scheme is a file or an image folder, `demo:CLIP`
a bundled clip). Ingest and live view take the same sets from here, so the configuration
accepts exactly what the service can open.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from gridwatch.settings.base import FrozenSettings

NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp",
                             "tcp"})
STREAM_SCHEMES = NETWORK_SCHEMES | {"file"}


class StreamSettings(FrozenSettings):
    """The `stream:` section of a camera.

    Timeouts are always finite: without a read timeout a frozen RTSP server blocks the
    reading thread forever.
    """

    transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="RTSP lower transport; TCP survives NAT and loss better")
    open_timeout_s: float = Field(default=5.0, gt=0, le=120,
                                  description="connect + describe + probe")
    read_timeout_s: float = Field(default=5.0, gt=0, le=120, description="longest blocking read")
    stall_timeout_s: float = Field(
        default=5.0, gt=0, le=600,
        description="connected but no frame for this long -> stalled, reconnect; in "
                    "keyframes-only mode packets count, as frames arrive once per GOP")
    backoff_initial_s: float = Field(default=1.0, gt=0, le=600, description="first reconnect wait")
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600, description="reconnect wait cap")
    rejected_backoff_initial_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="first wait after auth_failed / not_found / unsupported")
    rejected_backoff_max_s: float = Field(default=300.0, gt=0, le=86400,
                                          description="cap of that wait")
    decoder_threads: int = Field(default=1, ge=0, le=16, description="0 lets FFmpeg choose")
    keyframes_only: bool = Field(default=False, description="start decoding keyframes only")
    keyframe_skip_loop_filter: bool = Field(
        default=True,
        description="keyframes-only mode skips the deblocking filter: keyframes decode "
                          "cheaper (benchmarks/ingest_capacity.py measures it) and, as no "
                          "picture is predicted from them, no error drifts")
    low_latency: bool = Field(default=True, description="fflags=nobuffer, small probe")
    probe_size: int = Field(default=500_000, ge=32, description="bytes probed when opening")
    analyze_duration_s: float = Field(default=0.5, gt=0, le=30,
                                      description="media probed when opening")
    realtime: bool = Field(default=False, description="files: pace frames by their timestamps")
    loop: bool = Field(default=False, description="files and folders: start over at the end")
    fps: float = Field(default=10.0, gt=0, le=1000, description="image folders: frame rate for t")

    @field_validator("backoff_max_s", "rejected_backoff_max_s")
    @classmethod
    def _cap_not_below_first_wait(cls, value: float, info: ValidationInfo) -> float:
        first = info.field_name.replace("_max_s", "_initial_s") if info.field_name else ""
        initial = info.data.get(first)
        if initial is not None and value < initial:
            raise ValueError(f"must be >= {first} ({initial})")
        return value
