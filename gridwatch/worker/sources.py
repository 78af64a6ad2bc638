"""From a camera's configuration to what ingest opens: a concrete URL and stream options.

`demo:NAME` URLs become verified local clips that loop in real time, so the default
configuration behaves like live cameras.
"""

from __future__ import annotations

from gridwatch.demo import is_demo, resolve_demo
from gridwatch.settings.camera import CameraSettings
from gridwatch.settings.stream import StreamSettings


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
