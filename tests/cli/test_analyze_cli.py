"""`gridwatch analyze`: the JSON-lines contract on real footage with the real detector."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def analyze(*args: str, timeout: float = 240) -> tuple[int, list[dict], str]:
    result = subprocess.run(
        [sys.executable, "-m", "gridwatch.cli", "--log-level", "WARNING", "analyze", *args],
        capture_output=True, text=True, timeout=timeout,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, lines, result.stderr


def test_boat_is_reported_while_visible_and_not_on_the_empty_sea(footage_dir: Path) -> None:
    code, lines, err = analyze(
        str(footage_dir / "fishing_boat_sea_640x360_30fps.mp4"), "--every-frame", "--out", "-",
    )
    assert code == 0, err
    frames = [x for x in lines if x["type"] == "frame"]
    assert len(frames) == 569
    assert [f["frame"] for f in frames] == list(range(569))
    with_boat = [f for f in frames if any(d["cls"] == "boat" for d in f["detections"])]
    visible = [f for f in frames if f["t"] < 8.0]
    empty_sea = [f for f in frames if f["t"] > 11.0]
    assert len([f for f in with_boat if f["t"] < 8.0]) >= 0.9 * len(visible)
    assert not [f for f in with_boat if f["t"] > 11.0], "boat reported on the empty sea"
    assert empty_sea
    for det in with_boat[0]["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360
        assert set(det) == {"cls", "score", "box", "track"}

    incidents = [x for x in lines if x["type"] == "incident"]
    assert len(incidents) == 1, incidents
    (incident,) = incidents
    assert incident["kind"] == "illegal_fishing"
    assert incident["zone"] == "no-fishing-water"
    assert incident["start"] <= 3.0
    assert incident["end"] is not None and 8.0 < incident["end"] < 19.0
    assert incident["objects"].get("boat", 0) >= 1
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["frames_read"] == 569 and summary["frames_analysed"] == 569
    assert summary["incidents"] == 1 and summary["wall_s"] > 0 and summary["cpu_s"] > 0


def test_service_schedule_analyses_fewer_frames_than_every_frame(footage_dir: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "boat.jsonl"
    code, _, err = analyze(
        str(footage_dir / "fishing_boat_sea_640x360_30fps.mp4"), "--out", str(out),
    )
    assert code == 0, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    summary = lines[-1]
    assert summary["frames_read"] == 569
    assert summary["frames_analysed"] < summary["frames_read"] / 2
    assert [x["kind"] for x in lines if x["type"] == "incident"] == ["illegal_fishing"]


def test_image_folder_input_reports_people(footage_dir: Path) -> None:
    code, lines, err = analyze(str(footage_dir / "mot17_09_mini" / "img1"), "--every-frame")
    assert code == 0, err
    frames = [x for x in lines if x["type"] == "frame"]
    assert len(frames) == 4
    for frame in frames:
        people = [d for d in frame["detections"] if d["cls"] == "person"]
        assert len(people) >= 2
        assert all(0 <= d["box"][0] < d["box"][2] <= 1920 for d in people)


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    code, lines, err = analyze(str(tmp_path / "nothing.mp4"))
    assert code == 4
    assert "nothing.mp4" in err and "Traceback" not in err
    assert lines == []
