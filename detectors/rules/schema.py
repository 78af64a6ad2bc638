"""The rule configuration: a union of rule types (`type:`) and presets (`preset:`), and the
factory that turns one into a running `Rule`.

Each entry is validated against exactly one model, picked by its `type` or `preset`, so an
error names the field of that model (`rules[0].min_count: ...`) and never lists the errors of
every other model of the union.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from gridwatch.detectors.bank_change import BankChangeSettings
from gridwatch.detectors.rules.common import Condition, RuleCommon
from gridwatch.detectors.rules.crowd import (
    CrowdFields,
    CrowdRuleSpec,
    DensityCheck,
    GatheringCheck,
    SurgeCheck,
)
from gridwatch.detectors.rules.episode import Rule
from gridwatch.detectors.rules.ground import BankChangeRuleSpec, GroundChangeCheck
from gridwatch.detectors.rules.presence import PresenceCheck, PresenceCondition, PresenceRuleSpec
from gridwatch.detectors.rules.presets import CrowdPreset, IllegalFishingPreset, SandDiggingPreset
from pydantic import BeforeValidator, Discriminator, Tag

log = logging.getLogger(__name__)

RULE_TYPES = {"presence": PresenceRuleSpec, "crowd": CrowdRuleSpec,
              "bank_change": BankChangeRuleSpec}
PRESETS = {"illegal_fishing": IllegalFishingPreset, "sand_digging": SandDiggingPreset,
           "crowd": CrowdPreset}
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
    if isinstance(value, dict):
        return f"preset:{value['preset']}" if "preset" in value else value.get("type", "presence")
    preset = getattr(value, "preset", None)
    return f"preset:{preset}" if preset else getattr(value, "type", "presence")


RuleSpec = Annotated[
    Annotated[PresenceRuleSpec, Tag("presence")]
    | Annotated[CrowdRuleSpec, Tag("crowd")]
    | Annotated[BankChangeRuleSpec, Tag("bank_change")]
    | Annotated[IllegalFishingPreset, Tag("preset:illegal_fishing")]
    | Annotated[SandDiggingPreset, Tag("preset:sand_digging")]
    | Annotated[CrowdPreset, Tag("preset:crowd")],
    Discriminator(_tag),
    BeforeValidator(_check_choice),
]


def build_rule(spec: RuleCommon) -> Rule:
    """A running rule (its conditions and episode state) for one zone."""
    tolerance = spec.end_after_s
    conditions: list[Condition] = []
    if isinstance(spec, PresenceRuleSpec):
        cond = PresenceCondition.model_validate(
            spec.model_dump(include=set(PresenceCondition.model_fields)))
        conditions.append(PresenceCheck("presence", cond))
        label = "presence"
    elif isinstance(spec, CrowdFields):
        classes = frozenset(spec.classes)
        if spec.gathering is not None:
            conditions.append(GatheringCheck(spec.gathering, classes, spec.min_score, tolerance))
        if spec.density is not None:
            conditions.append(DensityCheck(spec.density, classes, spec.min_score, tolerance))
        if spec.surge is not None:
            conditions.append(SurgeCheck(spec.surge, classes, spec.min_score))
        label = "preset:crowd" if isinstance(spec, CrowdPreset) else "crowd"
    elif isinstance(spec, BankChangeRuleSpec):
        settings = BankChangeSettings.model_validate(
            spec.model_dump(include=set(BankChangeSettings.model_fields)))
        conditions.append(GroundChangeCheck(settings))
        label = "bank_change"
    elif isinstance(spec, IllegalFishingPreset):
        if spec.people is not None:
            conditions.append(PresenceCheck("people", spec.people))
        if spec.boats is not None:
            conditions.append(PresenceCheck("boats", spec.boats))
        label = "preset:illegal_fishing"
    elif isinstance(spec, SandDiggingPreset):
        if spec.machines is not None:
            conditions.append(PresenceCheck("machines", spec.machines))
        if spec.ground is not None:
            conditions.append(GroundChangeCheck(spec.ground))
        label = "preset:sand_digging"
    else:
        raise TypeError(f"no rule for {type(spec).__name__}")
    return Rule(spec, conditions, label)
