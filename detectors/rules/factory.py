"""From a rule's settings to the running `Rule` of one zone.

Each rule type and preset registers how its conditions are built under its settings' tag
(`type` or `preset:<name>`), so building a rule is one lookup and a new rule type adds one
entry here next to its settings model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gridwatch.detectors.rules.common import Condition
from gridwatch.detectors.rules.crowd import DensityCheck, GatheringCheck, SurgeCheck
from gridwatch.detectors.rules.episode import Rule
from gridwatch.detectors.rules.ground import GroundChangeCheck
from gridwatch.detectors.rules.presence import PresenceCheck
from gridwatch.settings.rules import (
    BankChangeRuleSettings,
    CrowdCommonSettings,
    CrowdPresetSettings,
    CrowdRuleSettings,
    IllegalFishingPresetSettings,
    PresenceRuleSettings,
    RuleCommonSettings,
    SandDiggingPresetSettings,
)


def _presence(spec: PresenceRuleSettings) -> list[Condition]:
    return [PresenceCheck("presence", spec.condition)]


def _crowd(spec: CrowdCommonSettings) -> list[Condition]:
    classes, tolerance = frozenset(spec.classes), spec.end_after_s
    conditions: list[Condition] = []
    if spec.gathering is not None:
        conditions.append(GatheringCheck(spec.gathering, classes, spec.min_score, tolerance))
    if spec.density is not None:
        conditions.append(DensityCheck(spec.density, classes, spec.min_score, tolerance))
    if spec.surge is not None:
        conditions.append(SurgeCheck(spec.surge, classes, spec.min_score))
    return conditions


def _bank_change(spec: BankChangeRuleSettings) -> list[Condition]:
    return [GroundChangeCheck(spec.detector)]


def _illegal_fishing(spec: IllegalFishingPresetSettings) -> list[Condition]:
    conditions: list[Condition] = []
    if spec.people is not None:
        conditions.append(PresenceCheck("people", spec.people))
    if spec.boats is not None:
        conditions.append(PresenceCheck("boats", spec.boats))
    return conditions


def _sand_digging(spec: SandDiggingPresetSettings) -> list[Condition]:
    conditions: list[Condition] = []
    if spec.machines is not None:
        conditions.append(PresenceCheck("machines", spec.machines))
    if spec.ground is not None:
        conditions.append(GroundChangeCheck(spec.ground))
    return conditions


# tag -> the conditions of a rule with that tag; each takes its own settings model.
_CONDITIONS: dict[str, Callable[[Any], list[Condition]]] = {
    PresenceRuleSettings.tag: _presence,
    CrowdRuleSettings.tag: _crowd,
    BankChangeRuleSettings.tag: _bank_change,
    IllegalFishingPresetSettings.tag: _illegal_fishing,
    SandDiggingPresetSettings.tag: _sand_digging,
    CrowdPresetSettings.tag: _crowd,
}


def build_rule(spec: RuleCommonSettings) -> Rule:
    """A running rule (its conditions and episode state) for one zone."""
    return Rule(spec, _CONDITIONS[spec.tag](spec), spec.tag)
