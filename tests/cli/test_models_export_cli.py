"""`gridwatch models ...`: verify reports each manifest model's checksum status (ok, mismatch,
missing) with an exit code an operator can script on; dynamic writes a verified copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gridwatch.cli.main import main
from gridwatch.models.manifest import load_manifest

MODELS = sorted(load_manifest().models)


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache and no downloads: what verify sees must come from this test alone."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GRIDWATCH_CACHE_DIR", str(cache))
    monkeypatch.setenv("GRIDWATCH_OFFLINE", "1")
    monkeypatch.delenv("GRIDWATCH_MODEL_DIR", raising=False)
    return cache


def _lines(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    out = capsys.readouterr().out
    return {line.split(":", 1)[0]: line for line in out.splitlines()}


def test_verify_reports_every_model_ok_once_the_derived_one_is_made(
    capsys: pytest.CaptureFixture[str], own_cache: Path
) -> None:
    pytest.importorskip("onnx", reason="the derived model needs the onnx extra")
    assert main(["models", "verify", "yolox_nano_coco_320"]) == 3
    assert "`gridwatch models fetch yolox_nano_coco_320` makes it" in capsys.readouterr().out
    assert main(["models", "fetch", "yolox_nano_coco_320"]) == 0
    assert str(own_cache) in capsys.readouterr().out
    assert main(["models", "verify"]) == 0
    lines = _lines(capsys)
    assert sorted(lines) == MODELS
    for name in MODELS:
        assert lines[name].startswith(f"{name}: ok ")


def test_verify_names_a_corrupted_copy_and_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, models_dir: Path
) -> None:
    bad = Path(shutil.copy(models_dir / "yolox_nano_coco_416.onnx", tmp_path))
    with bad.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    assert main(["models", "verify", "yolox_nano_coco_416", "yolov8n_coco_640_int8",
                 "--dir", str(tmp_path)]) == 3
    lines = capsys.readouterr().out.splitlines()
    mismatch = [line for line in lines if "MISMATCH" in line]
    assert len(mismatch) == 1
    assert str(bad) in mismatch[0] and load_manifest().get("yolox_nano_coco_416").sha256 in (
        mismatch[0]
    )
    assert any(line.startswith("yolov8n_coco_640_int8: ok ") for line in lines)


def test_verify_reports_missing_weights_and_how_to_get_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDWATCH_SHARED_MODELS", str(tmp_path / "none"))
    assert main(["models", "verify", "yolox_nano_coco_416"]) == 3
    line = capsys.readouterr().out.strip()
    assert line.startswith("yolox_nano_coco_416: missing")
    assert "`gridwatch models fetch yolox_nano_coco_416` downloads it" in line


def test_unknown_model_is_a_model_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "verify", "yolov99"]) == 3
    assert "yolox_nano_coco_416" in capsys.readouterr().err


def test_list_shows_each_model_with_its_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        assert name in out
    assert "backend onnxruntime" in out


def test_dynamic_writes_a_verified_copy_where_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("onnx", reason="dynamic copies need the onnx extra")
    assert main(["models", "dynamic", "yolox_nano_coco_416", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "yolox_nano_coco_416_dynamic.onnx").is_file()
    assert "verified at batch 2" in capsys.readouterr().out
