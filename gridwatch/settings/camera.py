"""A camera of the `cameras:` list: its streams, place in the grid, zones and analysis."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from gridwatch.common.redact import redact
from gridwatch.settings.analysis import CameraAnalysisSettings
from gridwatch.settings.base import StrictSettings
from gridwatch.settings.stream import STREAM_SCHEMES, StreamSettings
from gridwatch.settings.zones import ZoneSettings


class CameraSettings(StrictSettings):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = None
    url: str = Field(min_length=1,
                     description="rtsp://, a video file, an image folder or demo:CLIP")
    analysis_url: str | None = Field(default=None, description="Sub-stream used for analysis")
    grid_cell: str | None = None
    enabled: bool = True
    stream: StreamSettings = Field(default_factory=StreamSettings)
    zones: list[ZoneSettings] = Field(default_factory=list)
    analysis: CameraAnalysisSettings = Field(default_factory=CameraAnalysisSettings)

    @field_validator("url", "analysis_url")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme = v.split("://", 1)[0].lower() if "://" in v else None
        if scheme is not None and scheme not in STREAM_SCHEMES:
            raise ValueError(f"unsupported stream scheme in {redact(v)!r} (use rtsp://, a file "
                             "path, an image folder or demo:CLIP)")
        return v

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> CameraSettings:
        seen: set[str] = set()
        for z in self.zones:
            if z.id in seen:
                raise ValueError(f"zone id {z.id!r} is used twice")
            seen.add(z.id)
        return self
