"""The real clips behind `demo:NAME` camera URLs of the embedded default configuration, and
what a camera's settings open: a concrete URL and stream options (demo clips loop in real
time, so the default configuration behaves like live cameras). Both the worker side and the
web side resolve cameras through here.

The clips are found like model weights: $GRIDWATCH_FOOTAGE_DIR, then ../shared/footage beside the
checkout, then the user cache, and downloaded and verified only where missing.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field, HttpUrl

from gridwatch.models.fetch import fetch_verified, verify_file
from gridwatch.models.weights import REPO_DIR, cache_dir
from gridwatch.settings.base import StrictSettings
from gridwatch.settings.camera import CameraSettings
from gridwatch.settings.stream import StreamSettings

SCHEME = "demo:"
MANIFEST = Path(__file__).resolve().parent / "demo_footage.yaml"


class DemoClip(StrictSettings):
    name: str
    file: str
    url: HttpUrl
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(gt=0)
    licence: str


class DemoFootageError(LookupError):
    """A demo clip that is unknown or cannot be found, with what to do about it."""


@lru_cache(maxsize=1)
def clips() -> dict[str, DemoClip]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return {c["name"]: DemoClip.model_validate(c) for c in data["clips"]}


def footage_dirs() -> list[Path]:
    dirs = []
    if env := os.environ.get("GRIDWATCH_FOOTAGE_DIR"):
        dirs.append(Path(env))
    dirs += [REPO_DIR.parent / "shared" / "footage", Path.cwd().parent / "shared" / "footage",
             cache_dir().parent / "footage"]
    return list(dict.fromkeys(dirs))


def is_demo(url: str) -> bool:
    return url.startswith(SCHEME)


def resolve_demo(url: str) -> Path:
    """Path of the verified clip named by `demo:NAME`, downloading it only if it is missing."""
    name = url.removeprefix(SCHEME)
    clip = clips().get(name)
    if clip is None:
        raise DemoFootageError(f"unknown demo clip {name!r}; known: {', '.join(sorted(clips()))}")
    dirs = footage_dirs()
    for folder in dirs:
        candidate = folder / clip.file
        if candidate.is_file():
            verify_file(candidate, clip.sha256)
            return candidate
    target = dirs[-1] / clip.file
    try:
        return fetch_verified(str(clip.url), clip.sha256, target, label=f"demo clip {name}")
    except OSError as exc:
        raise DemoFootageError(
            f"demo clip {name!r} not found in {', '.join(map(str, dirs))} and could not be "
            f"downloaded ({exc}); put {clip.file} (sha256 {clip.sha256}) from {clip.url} "
            f"into one of those folders or set GRIDWATCH_FOOTAGE_DIR"
        ) from exc


def resolve_url(url: str) -> str:
    return str(resolve_demo(url)) if is_demo(url) else url


def camera_options(camera: CameraSettings) -> StreamSettings:
    """The camera's stream options; demo clips loop and are paced like a live camera."""
    if is_demo(camera.analysis_url or camera.url):
        return camera.stream.model_copy(update={"loop": True, "realtime": True})
    return camera.stream


def analysis_url(camera: CameraSettings) -> str:
    """The stream the detection core reads: the sub-stream when one is configured."""
    return resolve_url(camera.analysis_url or camera.url)
