"""Loading a configuration needs no video, database, model or web library: settings are data,
and the runtime modules that use those libraries take them, never the other way round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch.settings import DEFAULT_CONFIG

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
RUNTIME_LIBRARIES = ("av", "sqlalchemy", "onnxruntime", "fastapi", "cv2", "supervision",
                     "trackers")
PROBE = """
import json, sys
from gridwatch.settings import load_config
config = load_config(sys.argv[1])
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"cameras": len(config.cameras), "modules": loaded}))
"""


@pytest.mark.parametrize("path", [DEFAULT_CONFIG, *sorted(EXAMPLES.glob("*.yaml"))],
                         ids=lambda p: p.name)
def test_loading_a_configuration_imports_no_runtime_library(path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True,
                         text=True, check=True)
    probe = json.loads(out.stdout)
    assert probe["cameras"] >= 1
    assert not set(RUNTIME_LIBRARIES) & set(probe["modules"])
