"""The `clips:` section: how evidence clips are cut from each camera's packets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gridwatch.settings.base import FrozenSettings


class ClipSettings(FrozenSettings):
    """How evidence clips are cut; `buffer_max_bytes` bounds each camera's buffered packets."""

    enabled: bool = Field(default=True, description="record a clip for each incident")
    pre_roll_s: float = Field(default=10.0, ge=0, le=120, description="seconds before the event")
    post_roll_s: float = Field(default=5.0, ge=0, le=120,
                               description="seconds after the event (or its incident's end)")
    max_clip_s: float = Field(default=30.0, gt=0, le=600, description="longest clip")
    buffer_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=64 * 1024,
        description="buffered packets per camera (10 s of 1080p at 4 Mbit/s is 5 MB)")
    buffer_store: Literal["spool", "memory"] = Field(
        default="spool", description="spool: each GOP's packets in a short-lived file (page cache, "
        "not worker memory); memory: in the worker's memory")
    spool_dir: Path | None = Field(
        default=None,
        description="where cameras spool their packets, a folder per camera; default: "
        "`spool` beside the evidence folder (keep it off tmpfs, which is memory)")
    idle_timeout_s: float = Field(
        default=10.0, gt=0, le=600,
        description="a clip whose camera sends nothing for this long is written as it is")

    @model_validator(mode="after")
    def _room_for_both_rolls(self) -> ClipSettings:
        if self.max_clip_s < self.pre_roll_s + self.post_roll_s:
            raise ValueError(f"max_clip_s: {self.max_clip_s:g} is shorter than pre_roll_s + "
                             f"post_roll_s ({self.pre_roll_s + self.post_roll_s:g})")
        return self
