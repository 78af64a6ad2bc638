"""`gridwatch check-config`: every problem with its YAML path, never a password."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from gridwatch.settings import DEFAULT_CONFIG, load_config

SECRET = "s3cr3t-Pa55"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridwatch.cli", "check-config", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gridwatch.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_bundled_default_configuration_is_valid() -> None:
    result = check(DEFAULT_CONFIG)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert len(load_config(None).cameras) >= 4


def test_every_problem_is_reported_with_its_field_path(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
        cameras:
          - id: cam-a
            url: rtsp://admin:{SECRET}@10.0.0.5/stream1
            zones:
              - id: water
                polygon: [[0, 0], [1, 1]]
                rules:
                  - type: presence
                    classes: [boat]
                    min_count: 0
          - id: cam-b
            url: rtsp://cam-b/stream
            zones:
              - id: bank
                polygon: [[0, 0], [1.5, 0], [1, 1]]
        model:
          conf: 2
        """)
    result = check(path)
    assert result.returncode == 2
    err = result.stderr
    assert "cameras[0].zones[0].polygon: needs at least 3 points" in err
    assert "cameras[0].zones[0].rules[0].min_count:" in err
    assert "cameras[1].zones[0].polygon: point 1 (1.5, 0.0) is outside 0-1" in err
    assert "model.conf:" in err
    assert SECRET not in err + result.stdout


def test_password_never_appears_in_errors_about_the_url(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
        cameras:
          - id: cam-a
            url: mms://admin:{SECRET}@10.0.0.5/stream1
            unknown_field: 1
        """)
    result = check(path)
    assert result.returncode == 2
    assert "cameras[0].url: unsupported stream scheme" in result.stderr
    assert "mms://admin:***@10.0.0.5" in result.stderr
    assert "cameras[0].unknown_field: Extra inputs are not permitted" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_duplicate_ids_and_yaml_syntax_errors_are_named(tmp_path: Path) -> None:
    dup = write(tmp_path, """
        cameras:
          - {id: cam, url: a.mp4}
          - {id: cam, url: b.mp4}
        """)
    assert "camera id 'cam' is used twice" in check(dup).stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("cameras:\n  - id: cam\n    url: [unclosed\n", encoding="utf-8")
    result = check(broken)
    assert result.returncode == 2
    assert "line " in result.stderr and "Traceback" not in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert "cannot read file" in result.stderr and "Traceback" not in result.stderr
