"""Per-camera stream options, validated; the config layer embeds one per camera."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class StreamOptions(BaseModel):
    """How one source is opened, read, watched and retried.

    Timeouts are always finite: without a read timeout a frozen RTSP server blocks the
    reading thread forever (measured: still blocked after 100 s).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP lower transport; TCP survives NAT and loss better")
    open_timeout_s: float = Field(5.0, gt=0, le=120, description="connect + describe + probe")
    read_timeout_s: float = Field(5.0, gt=0, le=120, description="longest blocking read")
    stall_timeout_s: float = Field(
        5.0, gt=0, le=600,
        description="connected but no frame for this long -> stalled, reconnect; in "
                    "keyframes-only mode packets count, as frames arrive once per GOP")
    backoff_initial_s: float = Field(1.0, gt=0, le=600, description="first reconnect wait")
    backoff_max_s: float = Field(30.0, gt=0, le=3600, description="reconnect wait cap")
    rejected_backoff_initial_s: float = Field(
        10.0, gt=0, le=3600,
        description="first wait after auth_failed / not_found / unsupported")
    rejected_backoff_max_s: float = Field(300.0, gt=0, le=86400,
                                          description="cap of that wait")
    decoder_threads: int = Field(1, ge=0, le=16, description="0 lets FFmpeg choose")
    keyframes_only: bool = Field(False, description="start decoding keyframes only")
    keyframe_skip_loop_filter: bool = Field(
        True, description="keyframes-only mode skips the deblocking filter: keyframes decode "
                          "cheaper (benchmarks/ingest_capacity.py measures it) and, as no "
                          "picture is predicted from them, no error drifts")
    low_latency: bool = Field(True, description="fflags=nobuffer, small probe")
    probe_size: int = Field(500_000, ge=32, description="bytes probed when opening")
    analyze_duration_s: float = Field(0.5, gt=0, le=30, description="media probed when opening")
    realtime: bool = Field(False, description="files: pace frames by their timestamps")
    loop: bool = Field(False, description="files and folders: start over at the end")
    fps: float = Field(10.0, gt=0, le=1000, description="image folders: frame rate for t")

    @field_validator("backoff_max_s", "rejected_backoff_max_s")
    @classmethod
    def _cap_not_below_first_wait(cls, value: float, info: ValidationInfo) -> float:
        first = info.field_name.replace("_max_s", "_initial_s") if info.field_name else ""
        initial = info.data.get(first)
        if initial is not None and value < initial:
            raise ValueError(f"must be >= {first} ({initial})")
        return value
