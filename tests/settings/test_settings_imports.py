"""Loading a configuration needs no video, database, model or web library: settings are data,
and the runtime modules that use those libraries take them, never the other way round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch.settings import DEFAULT_CONFIG, load_config
from gridwatch.settings.root import GridwatchSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
EVERY_SECTION = Path(__file__).with_name("every_section.yaml")
SECRET_ENV = {"GRIDWATCH_TEST_WEBHOOK_SECRET": "not-a-real-secret"}
RUNTIME_LIBRARIES = ("av", "sqlalchemy", "onnxruntime", "fastapi", "cv2", "supervision",
                     "trackers")
PROBE = """
import json, sys
from gridwatch.settings import load_config
config = load_config(sys.argv[1])
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"cameras": len(config.cameras), "modules": loaded}))
"""


@pytest.mark.parametrize("path",
                         [DEFAULT_CONFIG, *sorted(EXAMPLES.glob("*.yaml")), EVERY_SECTION],
                         ids=lambda p: p.name)
def test_loading_a_configuration_imports_no_runtime_library(path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True,
                         text=True, check=True, env={**os.environ, **SECRET_ENV})
    probe = json.loads(out.stdout)
    assert probe["cameras"] >= 1
    assert not set(RUNTIME_LIBRARIES) & set(probe["modules"])


def test_every_section_example_sets_every_section_rule_and_sink_kind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    config = load_config(EVERY_SECTION)
    rules = {type(rule).__name__ for cam in config.cameras for zone in cam.zones
             for rule in zone.rules}
    assert config.model_fields_set == set(GridwatchSettings.model_fields)
    assert {sink.type for sink in config.sinks} == {"webhook", "mqtt", "redis_streams"}
    assert rules == {"IllegalFishingPresetSettings", "SandDiggingPresetSettings",
                     "CrowdPresetSettings", "PresenceRuleSettings", "CrowdRuleSettings",
                     "BankChangeRuleSettings"}
