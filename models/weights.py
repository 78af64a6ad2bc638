"""Finding, downloading and verifying the weights files named in the manifest.

Weights are only ever used after their sha256 matches the manifest (see `gridwatch.models.fetch`): a
truncated download or a swapped file would otherwise give silently wrong detections.

Lookup order, first hit wins: the package's own models/weights/ (for a `bundled` entry), the
configured model folder, $GRIDWATCH_MODEL_DIR, the shared models folder
($GRIDWATCH_SHARED_MODELS or <repo>/../shared/models), then the user cache
($GRIDWATCH_CACHE_DIR/models or ~/.cache/gridwatch/models). A missing file is downloaded into the
configured folder (else $GRIDWATCH_MODEL_DIR, else the cache) unless $GRIDWATCH_OFFLINE is set;
a `derived_from` entry is instead made into the cache from its origin's verified file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from gridwatch.models.errors import ExportError, WeightsMissingError
from gridwatch.models.fetch import fetch_verified, verify_file
from gridwatch.models.manifest import Manifest, ManifestEntry, load_manifest

log = logging.getLogger(__name__)

REPO_DIR = Path(__file__).resolve().parent.parent
BUNDLED_DIR = Path(__file__).resolve().parent / "weights"


def resolve_weights(
    name_or_path: str | Path,
    model_dir: Path | None = None,
    *,
    manifest: Manifest | None = None,
    download: bool | None = None,
) -> Path:
    """Path of verified weights for a manifest name, or a checked local .onnx path.

    `download=None` means "download unless $GRIDWATCH_OFFLINE is set".
    """
    manifest = manifest or load_manifest()
    if is_path_like(name_or_path):
        return _check_local_file(Path(name_or_path), manifest)
    entry = manifest.get(str(name_or_path))
    dirs = entry_dirs(entry, model_dir)
    for folder in dirs:
        candidate = folder / entry.file
        if candidate.is_file():
            verify_file(candidate, entry.sha256)
            log.debug("model %s: using %s", entry.name, candidate)
            return candidate
    if entry.derived_from is not None:
        return _derive(entry, model_dir, manifest, download)
    target = download_dir(model_dir) / entry.file
    if download is None:
        download = os.environ.get("GRIDWATCH_OFFLINE", "") in ("", "0")
    if not download:
        raise WeightsMissingError(_missing_message(entry, dirs, target, "downloads are off"))
    try:
        return fetch_verified(str(entry.url), entry.sha256, target, label=f"model {entry.name}")
    except OSError as exc:
        raise WeightsMissingError(
            _missing_message(entry, dirs, target, f"download failed: {exc}")
        ) from exc


def is_path_like(name_or_path: str | Path) -> bool:
    """A Path, or a string that names a file rather than a manifest entry."""
    if isinstance(name_or_path, Path):
        return True
    return name_or_path.endswith(".onnx") or os.sep in name_or_path


def entry_dirs(entry: ManifestEntry, model_dir: Path | None = None) -> list[Path]:
    """The folders searched for one entry's file: the package's own first for a bundled one."""
    return [BUNDLED_DIR, *search_dirs(model_dir)] if entry.bundled else search_dirs(model_dir)


def search_dirs(model_dir: Path | None = None) -> list[Path]:
    """The folders searched for weights, in priority order, without duplicates."""
    dirs: list[Path] = []
    if model_dir is not None:
        dirs.append(Path(model_dir))
    if env_dir := os.environ.get("GRIDWATCH_MODEL_DIR"):
        dirs.append(Path(env_dir))
    shared = os.environ.get("GRIDWATCH_SHARED_MODELS")
    dirs.append(Path(shared) if shared else REPO_DIR.parent / "shared" / "models")
    dirs.append(cache_dir())
    return list(dict.fromkeys(dirs))


def cache_dir() -> Path:
    """Per-user download cache; $GRIDWATCH_CACHE_DIR replaces ~/.cache/gridwatch."""
    if root := os.environ.get("GRIDWATCH_CACHE_DIR"):
        return Path(root) / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gridwatch" / "models"


def download_dir(model_dir: Path | None = None) -> Path:
    """Where a missing file is downloaded: the folder the operator chose, else the cache."""
    if model_dir is not None:
        return Path(model_dir)
    if env_dir := os.environ.get("GRIDWATCH_MODEL_DIR"):
        return Path(env_dir)
    return cache_dir()


def dynamic_copy(
    name_or_path: str | Path,
    *,
    spatial: bool = True,
    out_dir: Path | None = None,
    manifest: Manifest | None = None,
) -> Path:
    """A copy of a verified graph with a dynamic batch (and, with `spatial`, height and width),
    made once into the cache (or `out_dir`) and verified by running it at batch 2.

    The original is resolved and checksum-verified like any model first, so the copy is only
    ever derived from trusted bytes."""
    # onnx (an optional extra) and onnxruntime are only needed when a copy is made.
    from gridwatch.models.dynamic import write_dynamic_copy

    source = resolve_weights(name_or_path, manifest=manifest or load_manifest(), download=False)
    suffix = "_dynamic" if spatial else "_dynamic_batch"
    target = (out_dir or cache_dir()) / f"{source.stem}{suffix}.onnx"
    if target.is_file():
        return target
    return write_dynamic_copy(source, target, spatial=spatial)


def _derive(
    entry: ManifestEntry, model_dir: Path | None, manifest: Manifest, download: bool | None
) -> Path:
    """Make a derived graph in the cache from its origin's verified file, then check its pin."""
    origin = resolve_weights(str(entry.derived_from), model_dir, manifest=manifest,
                             download=download)
    try:
        path = dynamic_copy(origin, out_dir=cache_dir(), manifest=manifest)
    except ExportError as exc:
        raise WeightsMissingError(
            f"weights for model {entry.name!r} are made from {origin} and that failed: {exc}"
        ) from exc
    if path.name != entry.file:
        raise WeightsMissingError(
            f"model {entry.name!r} names file {entry.file} but deriving it gives {path.name}"
        )
    verify_file(path, entry.sha256)
    return path


def _check_local_file(path: Path, manifest: Manifest) -> Path:
    if not path.is_file():
        raise WeightsMissingError(f"model file {path} does not exist")
    entry = manifest.by_file(path.name)
    if entry is not None:
        verify_file(path, entry.sha256)
    else:
        log.info("model file %s is not in the manifest; using it unverified", path)
    return path


def _missing_message(entry: ManifestEntry, dirs: list[Path], target: Path, reason: str) -> str:
    return (
        f"weights for model {entry.name!r} not found ({reason}). "
        f"Put the file {entry.file} ({entry.bytes} bytes, sha256 {entry.sha256}) "
        f"downloaded from {entry.url} at {target} "
        f"(searched: {', '.join(str(d) for d in dirs)})"
    )
