"""Zone rules: turn per-frame zone contents into start/update/end events.

`RuleSpec` is the configuration of one rule (a `type:` or a `preset:`), `build_rule` makes the
running `Rule` of one zone, and `ZoneObservation` is what the pipeline hands it per analysed
frame. See docs/rules.md.
"""

from detectors.rules.common import Finding, RuleCommon, Severity, ZoneObservation
from detectors.rules.crowd import CrowdRuleSpec
from detectors.rules.episode import Rule
from detectors.rules.ground import BankChangeRuleSpec
from detectors.rules.presence import PresenceCondition, PresenceRuleSpec
from detectors.rules.presets import CrowdPreset, IllegalFishingPreset, SandDiggingPreset
from detectors.rules.schema import PRESETS, RULE_TAGS, RULE_TYPES, RuleSpec, build_rule
from detectors.rules.timewindows import TimeWindow

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
