"""The root of the configuration: one field per section of the YAML file."""

from __future__ import annotations

from pydantic import Field, model_validator

from gridwatch.settings.analysis import AnalysisSettings
from gridwatch.settings.api import ApiSettings
from gridwatch.settings.auth import AuthSettings
from gridwatch.settings.base import StrictSettings
from gridwatch.settings.camera import CameraSettings
from gridwatch.settings.clips import ClipSettings
from gridwatch.settings.deadlines import DeadlinesSettings
from gridwatch.settings.delivery import DeliverySettings
from gridwatch.settings.grid import GridSettings
from gridwatch.settings.model import ModelSettings
from gridwatch.settings.sinks import SinkSettings
from gridwatch.settings.storage import StorageSettings
from gridwatch.settings.workers import WorkersSettings


class GridwatchSettings(StrictSettings):
    """The whole configuration file."""

    cameras: list[CameraSettings] = Field(default_factory=list)
    model: ModelSettings = Field(default_factory=ModelSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings,
                                description="Evidence clips cut from each camera's packets")
    api: ApiSettings = Field(default_factory=ApiSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    incident_cooldown_s: float = Field(default=60.0, ge=0)
    grid: GridSettings = Field(default_factory=GridSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    deadlines: DeadlinesSettings = Field(default_factory=DeadlinesSettings)
    sinks: list[SinkSettings] = Field(default_factory=list,
                                  description="Outside systems incidents are delivered to")
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    workers: WorkersSettings = Field(default_factory=WorkersSettings)

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> GridwatchSettings:
        seen: set[str] = set()
        for c in self.cameras:
            if c.id in seen:
                raise ValueError(f"camera id {c.id!r} is used twice")
            seen.add(c.id)
        return self

    @model_validator(mode="after")
    def _unique_sink_names(self) -> GridwatchSettings:
        seen: set[str] = set()
        for i, sink in enumerate(self.sinks):
            if sink.name in seen:
                raise ValueError(f"sinks[{i}].name: {sink.name!r} is used twice")
            seen.add(sink.name)
        return self
