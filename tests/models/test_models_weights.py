"""Weights are found in the right folders, verified by sha256, downloaded atomically from a real
local HTTP server, and a missing file produces an error that says exactly what to put where."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gridwatch.models.errors import ChecksumMismatchError, UnknownModelError, WeightsMissingError
from gridwatch.models.fetch import fetch_verified
from gridwatch.models.manifest import Manifest, get_model_spec, load_manifest
from gridwatch.models.weights import resolve_weights, search_dirs

NAME = "yolox_nano_coco_416"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may see the developer's env or cache, nor reach the internet."""
    for var in ("GRIDWATCH_MODEL_DIR", "GRIDWATCH_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GRIDWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture
def no_shared_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    empty = tmp_path / "no-shared"
    empty.mkdir()
    monkeypatch.setenv("GRIDWATCH_SHARED_MODELS", str(empty))
    return empty


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        log = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                log.append(self.path)

            def log_message(self, format: str, *args: object) -> None:
                """Keep test output clean; requests are recorded by log_request."""

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "served"
    root.mkdir()
    server = _Server(root)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join(timeout=5)


def _manifest_with_url(url: str) -> Manifest:
    manifest = load_manifest()
    entry = manifest.get(NAME).model_copy(update={"url": url})
    return manifest.model_copy(update={"models": {**manifest.models, NAME: entry}})


def _closed_port_url() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/{NAME}.onnx"


def test_shared_weights_are_found_and_verified(models_dir: Path) -> None:
    for name in ("yolox_nano_coco_416", "yolov8n_coco_640_int8"):
        path = resolve_weights(name, download=False)
        assert path == models_dir / get_model_spec(name).file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == get_model_spec(name).sha256


def test_configured_folder_wins_over_env_folder_and_shared(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured, from_env = tmp_path / "configured", tmp_path / "env"
    for folder in (configured, from_env):
        folder.mkdir()
        shutil.copy(models_dir / f"{NAME}.onnx", folder)
    monkeypatch.setenv("GRIDWATCH_MODEL_DIR", str(from_env))
    assert resolve_weights(NAME, configured, download=False) == configured / f"{NAME}.onnx"
    assert resolve_weights(NAME, download=False) == from_env / f"{NAME}.onnx"
    assert search_dirs(configured)[:3] == [configured, from_env, models_dir]


def test_corrupted_copy_is_rejected_naming_file_and_both_hashes(
    models_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    bad = folder / f"{NAME}.onnx"
    data = bytearray((models_dir / bad.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError) as err:
        resolve_weights(NAME, folder, download=False)
    message = str(err.value)
    assert str(bad) in message
    assert get_model_spec(NAME).sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_file_corrupted_after_a_good_check_is_caught_on_the_next_resolve(
    models_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    path = Path(shutil.copy(models_dir / f"{NAME}.onnx", folder))
    assert resolve_weights(NAME, folder, download=False) == path
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(ChecksumMismatchError):
        resolve_weights(NAME, folder, download=False)


def test_missing_weights_offline_say_which_file_to_put_where(
    no_shared_models: Path, tmp_path: Path
) -> None:
    target_dir = tmp_path / "configured"
    with pytest.raises(WeightsMissingError) as err:
        resolve_weights(NAME, target_dir, download=False)
    spec = get_model_spec(NAME)
    message = str(err.value)
    for expected in (NAME, spec.file, spec.sha256, str(spec.url), str(target_dir / spec.file)):
        assert expected in message
    assert not target_dir.exists()


def test_offline_env_stops_the_download_attempt(
    no_shared_models: Path, http_server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDWATCH_OFFLINE", "1")
    with pytest.raises(WeightsMissingError, match="downloads are off"):
        resolve_weights(NAME, manifest=_manifest_with_url(http_server.url(f"{NAME}.onnx")))
    assert http_server.requests == []


def test_unreachable_server_reports_the_failure_and_the_manual_fix(
    no_shared_models: Path, tmp_path: Path
) -> None:
    url = _closed_port_url()
    with pytest.raises(WeightsMissingError) as err:
        resolve_weights(NAME, tmp_path / "dl", manifest=_manifest_with_url(url))
    message = str(err.value)
    assert "download failed" in message
    assert url in message
    assert get_model_spec(NAME).sha256 in message
    assert list((tmp_path / "dl").iterdir()) == []


def test_missing_weights_are_downloaded_verified_and_placed_atomically(
    models_dir: Path, no_shared_models: Path, http_server: _Server, tmp_path: Path
) -> None:
    served = Path(http_server.httpd.RequestHandlerClass.keywords["directory"])
    shutil.copy(models_dir / f"{NAME}.onnx", served / "yolox_nano.onnx")
    manifest = _manifest_with_url(http_server.url("yolox_nano.onnx"))
    cache = tmp_path / "cache" / "models"

    path = resolve_weights(NAME, manifest=manifest)

    assert path == cache / f"{NAME}.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == get_model_spec(NAME).sha256
    assert sorted(p.name for p in cache.iterdir()) == [f"{NAME}.onnx"]
    assert http_server.requests == ["/yolox_nano.onnx"]
    assert resolve_weights(NAME, manifest=manifest) == path
    assert len(http_server.requests) == 1


def test_download_with_wrong_content_leaves_nothing_behind(
    models_dir: Path, no_shared_models: Path, http_server: _Server, tmp_path: Path
) -> None:
    served = Path(http_server.httpd.RequestHandlerClass.keywords["directory"])
    shutil.copy(models_dir / "yolov8n_coco_640_int8.onnx", served / "yolox_nano.onnx")
    manifest = _manifest_with_url(http_server.url("yolox_nano.onnx"))
    target_dir = tmp_path / "configured"

    with pytest.raises(ChecksumMismatchError) as err:
        resolve_weights(NAME, target_dir, manifest=manifest)

    assert http_server.url("yolox_nano.onnx") in str(err.value)
    assert get_model_spec("yolov8n_coco_640_int8").sha256 in str(err.value)
    assert list(target_dir.iterdir()) == []


def test_http_404_is_reported_without_retrying(
    no_shared_models: Path, http_server: _Server, tmp_path: Path
) -> None:
    manifest = _manifest_with_url(http_server.url("gone.onnx"))
    with pytest.raises(WeightsMissingError, match="404"):
        resolve_weights(NAME, tmp_path / "dl", manifest=manifest)
    assert http_server.requests == ["/gone.onnx"]


def test_local_onnx_path_is_checked_against_the_manifest_entry_of_that_name(
    models_dir: Path, tmp_path: Path
) -> None:
    good = models_dir / f"{NAME}.onnx"
    assert resolve_weights(str(good)) == good
    bad = tmp_path / f"{NAME}.onnx"
    shutil.copy(models_dir / "yolov8n_coco_640_int8.onnx", bad)
    with pytest.raises(ChecksumMismatchError, match=str(bad)):
        resolve_weights(bad)


def test_local_onnx_path_outside_the_manifest_is_accepted_as_is(
    models_dir: Path, tmp_path: Path
) -> None:
    custom = Path(shutil.copy(models_dir / f"{NAME}.onnx", tmp_path / "my_export.onnx"))
    assert resolve_weights(custom) == custom
    with pytest.raises(WeightsMissingError, match="does not exist"):
        resolve_weights(tmp_path / "absent.onnx")


def test_unknown_name_is_not_mistaken_for_a_file() -> None:
    with pytest.raises(UnknownModelError):
        resolve_weights("yolox_tiny", download=False)


def test_any_pinned_file_can_be_fetched_into_a_new_folder(
    models_dir: Path, http_server: _Server, tmp_path: Path
) -> None:
    served = Path(http_server.httpd.RequestHandlerClass.keywords["directory"])
    shutil.copy(models_dir / "coco.names", served / "names.txt")
    sha = hashlib.sha256((models_dir / "coco.names").read_bytes()).hexdigest()
    target = tmp_path / "deep" / "folder" / "coco.names"

    assert fetch_verified(http_server.url("names.txt"), sha, target, label="names") == target

    assert target.read_bytes() == (models_dir / "coco.names").read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["coco.names"]
