"""Zone rules: turn per-frame zone contents into start/update/end events.

A rule's settings (`gridwatch.settings.rules`: a `type:` or a `preset:`) are built into the
running `Rule` of one zone by `build_rule`, and `ZoneObservation` is what the pipeline hands
it per analysed frame. See docs/rules.md.
"""

from gridwatch.detectors.rules.common import Finding, ZoneObservation
from gridwatch.detectors.rules.episode import Rule
from gridwatch.detectors.rules.factory import build_rule

__all__ = ["Finding", "Rule", "ZoneObservation", "build_rule"]
