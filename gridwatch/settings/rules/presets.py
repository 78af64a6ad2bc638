"""Presets: the rules the service exists for, with field-tested defaults a user can override.

A preset is an ordinary rule model whose defaults are the preset's settings; any field given
in the configuration replaces the default, nested settings field by field (`people:
{min_dwell_s: 900}` keeps the preset's classes and stationarity). Set a condition to `null`
to switch it off (`boats: null` for a bank with no water).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gridwatch.common.severity import Severity
from gridwatch.settings.bank_change import BankChangeSettings
from gridwatch.settings.rules.common import RuleCommonSettings
from gridwatch.settings.rules.crowd import (
    CrowdCommonSettings,
    DensitySettings,
    GatheringSettings,
    SurgeSettings,
)
from gridwatch.settings.rules.presence import PresenceConditionSettings


class FishingPeopleSettings(PresenceConditionSettings):
    """People who stay put on the bank or in the water zone."""

    classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1)
    min_dwell_s: float = Field(default=300.0, ge=0)
    stationary: bool | None = True


class FishingBoatsSettings(PresenceConditionSettings):
    """Boats in a no-fishing water zone."""

    classes: list[str] = Field(default_factory=lambda: ["boat"], min_length=1)
    min_dwell_s: float = Field(default=60.0, ge=0)


class IllegalFishingPresetSettings(RuleCommonSettings):
    """`preset: illegal_fishing`: stationary people or boats in the zone for a minimum time,
    inside the ban `windows` (none: all year)."""

    tag: ClassVar[str] = "preset:illegal_fishing"

    preset: Literal["illegal_fishing"]
    kind: str = Field(default="illegal_fishing", min_length=1)
    severity: Severity = "high"
    end_after_s: float = Field(default=60.0, ge=0)
    update_every_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=120.0, ge=0)
    people: FishingPeopleSettings | None = Field(default_factory=FishingPeopleSettings)
    boats: FishingBoatsSettings | None = Field(default_factory=FishingBoatsSettings)

    @model_validator(mode="after")
    def _something_on(self) -> IllegalFishingPresetSettings:
        if self.people is None and self.boats is None:
            raise ValueError("people and boats are both off: nothing to watch")
        return self


class DiggingMachinesSettings(PresenceConditionSettings):
    """Machines or vessels working in the bank zone: the bundled excavator model's
    `excavator` (earth-moving machines), COCO `truck` and `boat`, and an operator-trained
    model's `dredger`; classes the running model does not know are ignored."""

    classes: list[str] = Field(
        default_factory=lambda: ["excavator", "truck", "boat", "dredger"], min_length=1,
    )
    min_dwell_s: float = Field(default=300.0, ge=0)


class SandDiggingPresetSettings(RuleCommonSettings):
    """`preset: sand_digging`: machines working in the bank zone for a minimum time, or a
    lasting change of the bank's ground."""

    tag: ClassVar[str] = "preset:sand_digging"

    preset: Literal["sand_digging"]
    kind: str = Field(default="sand_digging", min_length=1)
    severity: Severity = "high"
    end_after_s: float = Field(default=120.0, ge=0)
    update_every_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=300.0, ge=0)
    machines: DiggingMachinesSettings | None = Field(default_factory=DiggingMachinesSettings)
    ground: BankChangeSettings | None = Field(default_factory=BankChangeSettings)

    @model_validator(mode="after")
    def _something_on(self) -> SandDiggingPresetSettings:
        if self.machines is None and self.ground is None:
            raise ValueError("machines and ground are both off: nothing to watch")
        return self


class CrowdPresetSettings(CrowdCommonSettings):
    """`preset: crowd`: gathering, over-density (needs the zone's `area_m2`) and surge, all on."""

    tag: ClassVar[str] = "preset:crowd"

    preset: Literal["crowd"]
    end_after_s: float = Field(default=15.0, ge=0)
    update_every_s: float = Field(default=30.0, gt=0)
    gathering: GatheringSettings | None = Field(default_factory=GatheringSettings)
    density: DensitySettings | None = Field(default_factory=DensitySettings)
    surge: SurgeSettings | None = Field(default_factory=SurgeSettings)
