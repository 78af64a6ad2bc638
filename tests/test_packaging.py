"""What a user installs: one `gridwatch` package that works from a wheel with plain pip.

The wheel is built from this checkout and installed into a fresh virtual environment, away
from the repository, so a dependency only a set-up script installs, a file missing from the
package data or a subpackage missing from pyproject's list shows up as a failing command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIP_TIMEOUT_S = 900


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _packages_in_tree() -> set[str]:
    found = set()
    for package, folder in _pyproject()["tool"]["setuptools"]["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            found.add(".".join([package, *rel.parts]))
    return found


def test_pyproject_lists_every_package_of_the_tree() -> None:
    assert set(_pyproject()["tool"]["setuptools"]["packages"]) == _packages_in_tree()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(REPO)], check=True, timeout=PIP_TIMEOUT_S, cwd=out)
    (built,) = out.glob("gridwatch-*.whl")
    return built


def test_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"gridwatch"}
    for data in ("gridwatch/default_config.yaml", "gridwatch/models/manifest.yaml",
                 "gridwatch/web/console/static/index.html",
                 "gridwatch/alerts/store/migrations/alembic.ini"):
        assert data in names


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel and what its metadata declares."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, timeout=PIP_TIMEOUT_S, cwd=venv)
    return venv


def _run(venv: Path, *args: str, cwd: Path, models_dir: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(GRIDWATCH_OFFLINE="1", GRIDWATCH_MODEL_DIR=str(models_dir))
    return subprocess.run([str(venv / "bin" / "gridwatch"), *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=env)


def test_installed_wheel_imports_from_the_venv_with_one_opencv(installed: Path) -> None:
    code = ("import cv2, gridwatch, gridwatch.ingest, gridwatch.detectors.tracking; "
            "print(gridwatch.__file__)")
    out = subprocess.run([str(installed / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, check=True, cwd=installed).stdout
    assert out.startswith(str(installed))
    listed = subprocess.run([str(installed / "bin" / "python"), "-m", "pip", "list",
                             "--format", "json"], capture_output=True, text=True,
                            check=True).stdout
    opencv = [p["name"] for p in json.loads(listed) if p["name"].startswith("opencv")]
    assert len(opencv) == 1, opencv


def test_installed_wheel_checks_the_bundled_configuration(installed: Path, tmp_path: Path,
                                                          models_dir: Path) -> None:
    config = next(installed.glob("lib/python*/site-packages/gridwatch/default_config.yaml"))
    result = _run(installed, "check-config", str(config), cwd=tmp_path, models_dir=models_dir)
    assert result.returncode == 0, result.stderr


def test_installed_wheel_analyzes_real_footage(installed: Path, tmp_path: Path,
                                               footage_dir: Path, models_dir: Path) -> None:
    clip = footage_dir / "fishing_boat_sea_640x360_30fps.mp4"
    out = tmp_path / "result.jsonl"
    result = _run(installed, "--log-level", "WARNING", "analyze", str(clip), "--out", str(out),
                  cwd=tmp_path, models_dir=models_dir)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["frames_analysed"] > 0
    boats = [d for line in lines if line["type"] == "frame" for d in line["detections"]
             if d["cls"] == "boat"]
    assert boats, "the installed detector found no boat in the boat clip"
