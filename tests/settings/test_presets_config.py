"""Rule configuration: presets expand to their documented settings and user fields override
them; each documented example loads; mistakes are reported with their YAML path by
`gridwatch check-config`; docs/rules.md documents every setting."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from gridwatch.detectors.rules import build_rule
from gridwatch.settings import DEFAULT_CONFIG, ConfigError, load_config, parse_config
from gridwatch.settings.bank_change import BankChangeSettings
from gridwatch.settings.rules import (
    RULE_TYPES,
    CrowdPresetSettings,
    DensitySettings,
    GatheringSettings,
    IllegalFishingPresetSettings,
    PresenceConditionSettings,
    RuleSettings,
    SandDiggingPresetSettings,
    SurgeSettings,
)
from gridwatch.settings.timewindows import TimeWindowSettings

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.yaml"))


def rule(**fields):
    return TypeAdapter(RuleSettings).validate_python(fields)


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridwatch.cli", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_presets_expand_to_their_settings_and_user_fields_override() -> None:
    fishing = rule(preset="illegal_fishing", people={"min_dwell_s": 900}, end_after_s=30)
    assert isinstance(fishing, IllegalFishingPresetSettings)
    assert fishing.kind == "illegal_fishing" and fishing.severity == "high"
    assert fishing.people.min_dwell_s == 900
    assert fishing.people.classes == ["person"] and fishing.people.stationary is True
    assert fishing.boats.classes == ["boat"] and fishing.boats.min_dwell_s == 60
    assert fishing.end_after_s == 30 and fishing.update_every_s == 60
    built = build_rule(fishing)
    assert [c.name for c in built.conditions] == ["people", "boats"]
    assert built.classes == {"person", "boat"}

    bank = build_rule(rule(preset="illegal_fishing", boats=None))
    assert [c.name for c in bank.conditions] == ["people"]

    digging = rule(preset="sand_digging", ground={"every_s": 60})
    assert isinstance(digging, SandDiggingPresetSettings)
    assert set(digging.machines.classes) == {"truck", "boat", "excavator", "dredger"}
    assert digging.ground.every_s == 60 and digging.ground.persist == BankChangeSettings().persist
    assert [c.name for c in build_rule(digging).conditions] == ["machines", "ground_change"]

    crowd = rule(preset="crowd", gathering={"min_count": 50})
    assert isinstance(crowd, CrowdPresetSettings) and crowd.kind == "crowd"
    assert crowd.gathering.min_count == 50 and crowd.gathering.min_duration_s == 30
    assert crowd.density is not None and crowd.surge is not None and crowd.needs_area
    assert [c.name for c in build_rule(crowd).conditions] == ["gathering", "density", "surge"]


def test_a_rule_without_type_is_presence() -> None:
    plain = rule(classes=["boat"], min_dwell_s=2)
    assert plain.type == "presence" and plain.kind == "presence"


@pytest.mark.parametrize("fields, message", [
    ({"preset": "illegal_fishing", "people": None, "boats": None}, "nothing to watch"),
    ({"preset": "sand_digging", "machines": None, "ground": None}, "nothing to watch"),
    ({"type": "crowd"}, "enable at least one of gathering, density, surge"),
    ({"type": "presence", "preset": "crowd"}, "either type or preset"),
    ({"preset": "crowds"}, "preset: 'crowds' is not one of illegal_fishing, sand_digging"),
    ({"type": "dwell"}, "type: 'dwell' is not one of presence, crowd, bank_change"),
    ({"preset": "crowd", "density": {"min_per_m2": 0}}, "greater than 0"),
    ({"preset": "illegal_fishing", "boat": {}}, "Extra inputs are not permitted"),
])
def test_rule_mistakes_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        rule(**fields)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_each_documented_example_loads(example: Path) -> None:
    config = load_config(example)
    rules = [r for cam in config.cameras for z in cam.zones for r in z.rules]
    assert rules
    wanted = example.stem
    assert any(getattr(r, "preset", None) == wanted for r in rules)
    for r in rules:
        assert build_rule(r).conditions


def test_the_bundled_configuration_uses_the_presets() -> None:
    config = load_config(DEFAULT_CONFIG)
    zones = {z.id: z for cam in config.cameras for z in cam.zones}
    [fishing] = zones["no-fishing-water"].rules
    assert fishing.preset == "illegal_fishing" and fishing.boats.min_dwell_s == 2
    [crowd] = zones["hall-floor"].rules
    assert crowd.preset == "crowd" and zones["hall-floor"].area_m2


def test_density_without_the_zone_area_is_an_error() -> None:
    data = {"cameras": [{"id": "cam", "url": "a.mp4", "zones": [
        {"id": "square", "polygon": [[0, 0], [1, 0], [1, 1]], "rules": [{"preset": "crowd"}]},
    ]}]}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert err.value.problems == [
        "cameras[0].zones[0]: rules[0] counts people per square metre: set the zone's area_m2 "
        "(its real ground area) or turn density off (density: null)"
    ]
    data["cameras"][0]["zones"][0]["rules"] = [{"preset": "crowd", "density": None}]
    assert parse_config(data).cameras[0].zones[0].rules[0].density is None


def test_check_config_names_the_field_of_a_broken_example(tmp_path: Path) -> None:
    text = (DOCS / "examples" / "illegal_fishing.yaml").read_text(encoding="utf-8")
    text = text.replace("people: {min_dwell_s: 600, min_score: 0.25}",
                        "people: {min_dwell_s: -5, min_count: 0}")
    text = text.replace('hours: "18:00-06:00"', 'hours: "18h-6h"')
    text += textwrap.indent(textwrap.dedent("""
      - id: yard
        url: rtsp://viewer:secret@10.20.0.12/stream
        zones:
          - id: quay
            polygon: [[0, 0], [1, 0], [1, 1]]
            calibration: {metres_per_pixel: 0.02, image_points: [[0, 0]]}
            rules:
              - type: presence
                classes: [boat]
                min_count: 0
              - {preset: sand_digging, ground: {persist: 0}}
              - {preset: fishing}
    """), "  ")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text, encoding="utf-8")
    result = check(broken)
    assert result.returncode == 2
    err = result.stderr
    for line in (
        "cameras[0].zones[1].rules[0].people.min_dwell_s: Input should be greater than or "
        "equal to 0",
        "cameras[0].zones[1].rules[0].people.min_count: Input should be greater than or "
        "equal to 1",
        "cameras[0].zones[1].rules[0].windows[0].hours: '18h-6h' is not HH:MM-HH:MM",
        "cameras[1].zones[0].rules[0].min_count: Input should be greater than or equal to 1",
        "cameras[1].zones[0].rules[1].ground.persist: Input should be greater than or "
        "equal to 1",
        "cameras[1].zones[0].rules[2]: preset: 'fishing' is not one of",
        "cameras[1].zones[0].calibration: give either metres_per_pixel or "
        "image_points/ground_points",
    ):
        assert line in err, err
    assert "secret" not in err and "Traceback" not in err


def test_every_rule_setting_is_documented() -> None:
    doc = (DOCS / "rules.md").read_text(encoding="utf-8")
    models: list[type[BaseModel]] = [
        *RULE_TYPES.values(), IllegalFishingPresetSettings, SandDiggingPresetSettings,
        CrowdPresetSettings, PresenceConditionSettings, GatheringSettings, DensitySettings,
        SurgeSettings,
        BankChangeSettings, TimeWindowSettings,
    ]
    missing = sorted({f"{m.__name__}.{name}" for m in models for name in m.model_fields
                      if f"`{name}" not in doc and f" {name}:" not in doc})
    assert not missing, f"not in docs/rules.md: {missing}"
