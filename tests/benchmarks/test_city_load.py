"""benchmarks/city_load.py runs end to end on a tiny setting and prints its one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.city_load import KINDS, condition_times, serve_file
from gridwatch.settings.loader import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.rtsp
@pytest.mark.slow
def test_city_load_prints_one_json_object_with_detection_and_watch_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "city_load.py"), "--kinds", "street",
         "--per-kind", "1", "--mix", "street=1", "--window", "4", "--mix-window", "4"],
        capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["benchmark"] == "city_load"
    assert report["watch_only"]["cpu_ms_per_camera_s"] > 0
    assert report["watch_only"]["cameras_2cores"] > 0
    for figures in (report["detection_on"]["mix"], report["detection_on"]["per_kind"]["street"]):
        assert figures["cpu_ms_per_camera_s"] > 0
        assert figures["cameras_2cores"] > 0
    assert report["detector_inferences_per_camera_s"]["street"] >= 0
    assert report["detection_latency_s"]["street"]["frames"] > 0
    assert report["detection_latency_s"]["street"]["p50"] is not None
    onset = report["event_onset_latency_s"]["street"]
    assert set(onset) >= {"p50_s", "p95_s", "onsets", "labelled_intervals_without_event"}
    assert report["rss_mib_per_camera"]["mix"] > 0
    assert report["runs"]["mix"]["online"] and report["runs"]["watch_only"]["online"]
    # The model is the embedded default configuration's, not one of the benchmark's own.
    assert report["setup"]["model"] == yaml.safe_load(
        DEFAULT_CONFIG.read_text(encoding="utf-8"))["model"]


def test_a_condition_running_over_the_loop_seam_is_one_interval() -> None:
    crowd = serve_file(KINDS["crowd"])
    spans = condition_times(crowd, 5.0, 3 * crowd.period_s)
    assert len(spans) == 1
    assert spans[0][0] <= 5.0 and spans[0][1] >= 3 * crowd.period_s


def test_separate_crossings_stay_separate_intervals_in_each_loop() -> None:
    boats = serve_file(KINDS["boats"])
    spans = condition_times(boats, 0.0, 2 * boats.period_s + 1.0)
    assert [round(a, 2) for a, _ in spans] == [0.0, round(boats.period_s, 2),
                                               round(2 * boats.period_s, 2)]
