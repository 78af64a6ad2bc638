"""Crowd conditions: gathering, over-density and a surge or sudden dispersal.

Speeds are in object sizes per second (a track's speed over its box size), so people near and
far from the camera count alike and no calibration is needed.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gridwatch.common.severity import Severity
from gridwatch.settings.base import StrictSettings
from gridwatch.settings.rules.common import RuleCommonSettings


class GatheringSettings(StrictSettings):
    min_count: int = Field(default=20, ge=1)
    min_duration_s: float = Field(default=30.0, ge=0)
    severity: Severity | None = None


class DensitySettings(StrictSettings):
    min_per_m2: float = Field(default=2.0, gt=0, description="People per square metre.")
    min_duration_s: float = Field(default=10.0, ge=0)
    severity: Severity | None = "high"


class SurgeSettings(StrictSettings):
    factor: float = Field(default=2.5, gt=1, description="Speed over the baseline's.")
    min_increase: float = Field(
        default=0.4, ge=0, description="And at least this much faster, in sizes per second.",
    )
    within_s: float = Field(default=2.0, gt=0, description="The jump is measured over this.")
    baseline_s: float = Field(default=60.0, gt=0, description="Recent history it is compared to.")
    min_baseline_s: float = Field(
        default=8.0, ge=0, description="History needed before a jump can be judged.",
    )
    min_tracks: int = Field(default=5, ge=1, description="Moving tracks needed to judge speed.")
    dispersal_share: float = Field(
        default=0.5, gt=0, le=1,
        description="Mean outward share of the motion above which it is a dispersal.",
    )
    emptied_share: float = Field(
        default=0.5, gt=0, le=1,
        description="Share of the people gone within `within_s` that is a dispersal.",
    )
    severity: Severity | None = "high"


class CrowdCommonSettings(RuleCommonSettings):
    kind: str = Field(default="crowd", min_length=1, description="Incident kind it raises.")
    classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1)
    min_score: float = Field(default=0.3, ge=0, le=1)
    gathering: GatheringSettings | None = None
    density: DensitySettings | None = None
    surge: SurgeSettings | None = None

    @model_validator(mode="after")
    def _something_on(self) -> CrowdCommonSettings:
        if self.gathering is None and self.density is None and self.surge is None:
            raise ValueError("enable at least one of gathering, density, surge")
        return self

    @property
    def needs_area(self) -> bool:
        return self.density is not None


class CrowdRuleSettings(CrowdCommonSettings):
    """`type: crowd`: any of gathering, density and surge (each off unless given)."""

    tag: ClassVar[str] = "crowd"

    type: Literal["crowd"] = "crowd"
