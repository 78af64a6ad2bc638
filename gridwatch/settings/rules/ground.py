"""Ground change as a rule: lasting change of the ground in the zone."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from gridwatch.common.severity import Severity
from gridwatch.settings.bank_change import BankChangeSettings
from gridwatch.settings.rules.common import RuleCommonSettings


class BankChangeRuleSettings(RuleCommonSettings, BankChangeSettings):
    """`type: bank_change`: lasting change of the ground in the zone."""

    tag: ClassVar[str] = "bank_change"

    type: Literal["bank_change"] = "bank_change"
    kind: str = Field(default="bank_change", min_length=1, description="Incident kind it raises.")
    severity: Severity = "medium"

    @property
    def detector(self) -> BankChangeSettings:
        """The detector's settings, without the rule's episode settings."""
        return BankChangeSettings.model_validate(
            self.model_dump(include=set(BankChangeSettings.model_fields)))
