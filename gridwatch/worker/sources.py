"""From a camera's configuration to what ingest opens: a concrete URL and stream options.

`demo:NAME` URLs become verified local clips that loop in real time, so the default
configuration behaves like live cameras.
"""

from __future__ import annotations

from gridwatch.demo import is_demo, resolve_demo
from gridwatch.ingest.options import StreamOptions
from gridwatch.settings import CameraConfig


def resolve_url(url: str) -> str:
    return str(resolve_demo(url)) if is_demo(url) else url


def camera_options(camera: CameraConfig) -> StreamOptions:
    """The camera's stream options; demo clips loop and are paced like a live camera."""
    if is_demo(camera.analysis_url or camera.url):
        return camera.stream.model_copy(update={"loop": True, "realtime": True})
    return camera.stream


def analysis_url(camera: CameraConfig) -> str:
    """The stream the detection core reads: the sub-stream when one is configured."""
    return resolve_url(camera.analysis_url or camera.url)
