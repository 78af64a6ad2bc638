"""What every rule's settings share: the episode (start, updates, end: one incident)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from gridwatch.common.severity import Severity
from gridwatch.settings.base import StrictSettings
from gridwatch.settings.timewindows import TimeWindowSettings


class RuleCommonSettings(StrictSettings):
    """Settings of the episode every rule type shares.

    `tag` is the rule's `type` or `preset:<name>`: the union's discriminator, the `rule`
    label of its events and the key the detectors look its runtime up by.
    """

    tag: ClassVar[str]

    id: str | None = Field(default=None, description="Defaults to the kind.")
    kind: str = Field(default="presence", min_length=1, description="Incident kind it raises.")
    severity: Severity = "medium"
    start_after_s: float = Field(
        default=0.0, ge=0, description="Start hysteresis: the condition must hold this long.",
    )
    end_after_s: float = Field(
        default=10.0, ge=0, description="End hysteresis: the condition must be absent this long.",
    )
    cooldown_s: float = Field(
        default=0.0, ge=0, description="After an end, no new start for this long.",
    )
    update_every_s: float = Field(
        default=10.0, gt=0, description="At most one update event per this many seconds.",
    )
    windows: list[TimeWindowSettings] = Field(
        default_factory=list, description="Armed only inside one of these (none: always).",
    )

    @property
    def rule_id(self) -> str:
        return self.id or self.kind

    @property
    def needs_area(self) -> bool:
        """True when the rule measures per square metre and so needs the zone's `area_m2`."""
        return False
