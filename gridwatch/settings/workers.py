"""The `workers:` section: camera worker processes, their health checks and previews."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gridwatch.settings.base import StrictSettings


class WorkersSettings(StrictSettings):
    """Camera worker processes: each owns a share of the cameras (a decoder thread per
    camera, one analysis thread); the main process keeps the store, the API and delivery."""

    count: int | Literal["auto"] = Field(
        default="auto", description="auto: one per CPU core available (at most one per "
                                    "camera); 0 runs the cameras in the main process")
    heartbeat_timeout_s: float = Field(
        default=15.0, gt=0, le=600,
        description="A worker silent (or whose analysis is stuck) this long is restarted")
    restart_backoff_initial_s: float = Field(default=0.5, ge=0, le=60)
    restart_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    preview_interval_s: float = Field(
        default=1.0, gt=0, le=60,
        description="Camera wall picture at most this often while someone looks at it")
    preview_idle_interval_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="Camera wall picture this often while nobody looks at it, so that a "
                    "wall opened later shows a picture at once (its age in X-Frame-Wall)")
    preview_demand_s: float = Field(
        default=15.0, ge=2, le=3600,
        description="A request for a camera's picture keeps its previews at "
                    "preview_interval_s this long; longer than the console's refresh")

    @field_validator("count", mode="before")
    @classmethod
    def _auto_or_count(cls, v: object) -> object:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 64):
            return v
        raise ValueError("must be 'auto' or a number of worker processes from 0 to 64")

    @model_validator(mode="after")
    def _preview_rates(self) -> WorkersSettings:
        if self.preview_idle_interval_s < self.preview_interval_s:
            raise ValueError("preview_idle_interval_s: must be at least preview_interval_s")
        # A viewer asks again when a new picture came, so the demand must outlast the gap.
        if self.preview_demand_s < 2 * self.preview_interval_s:
            raise ValueError("preview_demand_s: must be at least twice preview_interval_s")
        return self
