"""`open_source`: one entry point for cameras, video files, GIFs and image folders."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from gridwatch.common.redact import redact
from gridwatch.ingest.av_source import AvSource
from gridwatch.ingest.counters import CameraCounters
from gridwatch.ingest.errors import SourceError
from gridwatch.ingest.folder_source import ImageFolderSource
from gridwatch.ingest.source import Source
from gridwatch.ingest.state import CameraState
from gridwatch.settings.stream import NETWORK_SCHEMES, StreamSettings


def open_source(
    uri: str,
    options: StreamSettings | None = None,
    camera_id: str = "",
    counters: CameraCounters | None = None,
) -> Source:
    """Open `uri` and return a Source ready to iterate.

    `uri` is a network URL (rtsp://..., credentials allowed), a `file://` URL or a path to
    a video file, a GIF, or a folder of images. Raises `SourceError` (redacted message,
    `state` telling the kind of failure) when it cannot be opened.
    """
    options = options or StreamSettings()
    scheme = urlsplit(uri).scheme.lower()
    if scheme in NETWORK_SCHEMES:
        return AvSource(uri, options, camera_id, counters, live=True)
    if scheme == "file":
        path = Path(unquote(urlsplit(uri).path))
    elif scheme:
        raise SourceError(CameraState.UNSUPPORTED,
                          f"unsupported URL scheme {scheme!r} in {redact(uri)}")
    else:
        path = Path(uri)
    if path.is_dir():
        return ImageFolderSource(path, options, camera_id, counters)
    if not path.is_file():
        raise SourceError(CameraState.NOT_FOUND, f"no such file or folder: {path}")
    return AvSource(str(path), options, camera_id, counters, live=False)
