"""Presence: enough objects of some classes in the zone, each there long enough."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from gridwatch.settings.base import StrictSettings
from gridwatch.settings.rules.common import RuleCommonSettings


class PresenceConditionSettings(StrictSettings):
    """Which objects count, and how many must be there for how long."""

    classes: list[str] = Field(min_length=1)
    min_count: int = Field(default=1, ge=1)
    min_dwell_s: float = Field(
        default=5.0, ge=0, description="Each counted track has been in the zone this long.",
    )
    stationary: bool | None = Field(
        default=None, description="true: only objects that stay put; false: only moving ones.",
    )
    min_score: float = Field(default=0.3, ge=0, le=1)


class PresenceRuleSettings(RuleCommonSettings, PresenceConditionSettings):
    """`type: presence`: objects of these classes in the zone, per-track dwell, optionally
    stationary."""

    tag: ClassVar[str] = "presence"

    type: Literal["presence"] = "presence"
    kind: str = Field(default="presence", min_length=1, description="Incident kind it raises.")

    @property
    def condition(self) -> PresenceConditionSettings:
        """The rule's own condition, without its episode settings."""
        return PresenceConditionSettings.model_validate(
            self.model_dump(include=set(PresenceConditionSettings.model_fields)))
