"""The rules of a zone: a union of rule types (`type:`) and presets (`preset:`).

Each entry is validated against exactly one model, picked by its `type` or `preset`, so an
error names the field of that model (`rules[0].min_count: ...`) and never lists the errors of
every other model of the union. See docs/rules.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Discriminator, Tag

from gridwatch.settings.rules.common import RuleCommonSettings
from gridwatch.settings.rules.crowd import (
    CrowdCommonSettings,
    CrowdRuleSettings,
    DensitySettings,
    GatheringSettings,
    SurgeSettings,
)
from gridwatch.settings.rules.ground import BankChangeRuleSettings
from gridwatch.settings.rules.presence import PresenceConditionSettings, PresenceRuleSettings
from gridwatch.settings.rules.presets import (
    CrowdPresetSettings,
    IllegalFishingPresetSettings,
    SandDiggingPresetSettings,
)

__all__ = [
    "PRESETS", "RULE_TAGS", "RULE_TYPES", "BankChangeRuleSettings", "CrowdCommonSettings",
    "CrowdPresetSettings", "CrowdRuleSettings", "DensitySettings", "GatheringSettings",
    "IllegalFishingPresetSettings", "PresenceConditionSettings", "PresenceRuleSettings",
    "RuleCommonSettings", "RuleSettings", "SandDiggingPresetSettings", "SurgeSettings",
]

RULE_TYPES: dict[str, type[RuleCommonSettings]] = {
    m.tag: m for m in (PresenceRuleSettings, CrowdRuleSettings, BankChangeRuleSettings)
}
PRESETS: dict[str, type[RuleCommonSettings]] = {
    m.tag.removeprefix("preset:"): m
    for m in (IllegalFishingPresetSettings, SandDiggingPresetSettings, CrowdPresetSettings)
}
#: The union's tags; pydantic puts them in error locations, the config loader drops them.
RULE_TAGS = frozenset(RULE_TYPES) | frozenset(f"preset:{p}" for p in PRESETS)


def _check_choice(value: Any) -> Any:
    """Name a wrong `type`/`preset` plainly, before the union has to guess."""
    if not isinstance(value, dict):
        return value
    if "type" in value and "preset" in value:
        raise ValueError("give either type or preset, not both")
    if "preset" in value and value["preset"] not in PRESETS:
        raise ValueError(f"preset: {value['preset']!r} is not one of {', '.join(PRESETS)}")
    if "type" in value and value["type"] not in RULE_TYPES:
        raise ValueError(f"type: {value['type']!r} is not one of {', '.join(RULE_TYPES)} "
                         f"(or use preset: {', '.join(PRESETS)})")
    return value


def _tag(value: Any) -> str:
    if isinstance(value, RuleCommonSettings):
        return value.tag
    if isinstance(value, dict):
        return f"preset:{value['preset']}" if "preset" in value else value.get("type", "presence")
    return "presence"


RuleSettings = Annotated[
    Annotated[PresenceRuleSettings, Tag(PresenceRuleSettings.tag)]
    | Annotated[CrowdRuleSettings, Tag(CrowdRuleSettings.tag)]
    | Annotated[BankChangeRuleSettings, Tag(BankChangeRuleSettings.tag)]
    | Annotated[IllegalFishingPresetSettings, Tag(IllegalFishingPresetSettings.tag)]
    | Annotated[SandDiggingPresetSettings, Tag(SandDiggingPresetSettings.tag)]
    | Annotated[CrowdPresetSettings, Tag(CrowdPresetSettings.tag)],
    Discriminator(_tag),
    BeforeValidator(_check_choice),
]
