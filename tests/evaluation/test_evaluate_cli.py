"""`gridwatch evaluate` prints one JSON object on a real two-image subset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridwatch.cli", "--log-level", "WARNING", "evaluate", *args],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )


def test_one_json_object_with_dev_and_val_and_baselines(datasets_dir: Path) -> None:
    result = evaluate("--sets", "construction_machinery,crowd_heads", "--limit", "1",
                      "--data-dir", str(datasets_dir))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    machines = out["sets"]["construction_machinery"]
    assert machines["images"] == {"dev": 1, "val": 1}
    for split in ("dev", "val"):
        assert set(machines[split]) == {"pipeline", "baseline_raw_model"}
        machine = machines[split]["pipeline"]["machine"]
        assert machine["pipeline_classes"] == ["dump_truck", "excavator", "loader", "truck"]
        assert machine["at_threshold"]["targets"] >= 1
        assert "all" in machine["ap50"]
    target = machines["targets"][0]
    assert target["category"] == "machine" and target["min_recall"] == 0.85
    assert target["met"] is False   # COCO has no excavator: the gap, measured
    crowd = out["sets"]["crowd_heads"]["val"]["pipeline"]
    assert crowd["images"] == 1 and crowd["per_image"][0]["true"] > 0


def test_unknown_set_is_a_clear_error(datasets_dir: Path) -> None:
    result = evaluate("--sets", "boats", "--data-dir", str(datasets_dir))
    assert result.returncode == 2
    assert "unknown set 'boats'" in result.stderr and "Traceback" not in result.stderr
