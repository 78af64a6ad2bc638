"""A folder of still images played as a video at a configured frame rate."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from gridwatch.ingest.counters import CameraCounters
from gridwatch.ingest.errors import SourceError
from gridwatch.ingest.frame import Frame
from gridwatch.ingest.source import Pacer, Source
from gridwatch.ingest.state import CameraState
from gridwatch.settings.stream import StreamSettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def _natural_key(path: Path) -> list[object]:
    """frame2 before frame10, whether or not the numbers are zero-padded."""
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource(Source):
    """Images in natural name order; `t` = position / fps, so gaps from unreadable files
    keep the timing of the sequence."""

    def __init__(self, folder: Path, options: StreamSettings, camera_id: str = "",
                 counters: CameraCounters | None = None) -> None:
        super().__init__(str(folder), options, camera_id, counters)
        self.files = sorted((p for p in folder.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=_natural_key)
        if not self.files:
            raise SourceError(CameraState.NOT_FOUND, f"no images in folder {folder}")
        self._pacer = Pacer(self._interrupted) if options.realtime else None

    def frames(self) -> Iterator[Frame]:
        interval = 1 / self.options.fps
        position = 0
        index = 0
        while True:
            for path in self.files:
                if self._interrupted.is_set():
                    return
                t = position * interval
                position += 1
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    self.counters.decode_errors += 1
                    log.warning("%s: unreadable image %s skipped", self.camera_id, path.name)
                    continue
                self.counters.packet(path.stat().st_size)
                if self._pacer is not None and not self._pacer.wait(t):
                    return
                self.counters.frame()
                yield Frame.from_bgr(self.camera_id, index, t, time.time(), image)
                index += 1
            if not self.options.loop:
                return
