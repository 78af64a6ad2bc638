"""Zone rules: turn per-frame zone contents into start/update/end events.

`RuleSpec` is the configuration of one rule (a `type:` or a `preset:`), `build_rule` makes the
running `Rule` of one zone, and `ZoneObservation` is what the pipeline hands it per analysed
frame. See docs/rules.md.
"""

from gridwatch.detectors.rules.common import Finding, RuleCommon, Severity, ZoneObservation
from gridwatch.detectors.rules.crowd import CrowdRuleSpec
from gridwatch.detectors.rules.episode import Rule
from gridwatch.detectors.rules.ground import BankChangeRuleSpec
from gridwatch.detectors.rules.presence import PresenceCondition, PresenceRuleSpec
from gridwatch.detectors.rules.presets import CrowdPreset, IllegalFishingPreset, SandDiggingPreset
from gridwatch.detectors.rules.schema import PRESETS, RULE_TAGS, RULE_TYPES, RuleSpec, build_rule
from gridwatch.detectors.rules.timewindows import TimeWindow

__all__ = [
    "PRESETS",
    "RULE_TAGS",
    "RULE_TYPES",
    "BankChangeRuleSpec",
    "CrowdPreset",
    "CrowdRuleSpec",
    "Finding",
    "IllegalFishingPreset",
    "PresenceCondition",
    "PresenceRuleSpec",
    "Rule",
    "RuleCommon",
    "RuleSpec",
    "SandDiggingPreset",
    "Severity",
    "TimeWindow",
    "ZoneObservation",
    "build_rule",
]
