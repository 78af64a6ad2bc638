"""The unit that flows out of ingest: one decoded picture with its timing.

Conversions are lazy because most analysed frames never need colour: motion runs on the
decoder's luma plane (free), and only frames that reach the detector pay for BGR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av


@dataclass(slots=True, eq=False)
class Frame:
    """A decoded frame of one camera.

    `t` is media time in seconds from the start of the stream (from the PTS, so it is
    monotonic and independent of decode speed); `wall` is the Unix time the frame was
    decoded, used for latency, liveness and for the wall-clock time of incidents.
    """

    camera_id: str
    index: int
    t: float
    wall: float
    keyframe: bool
    width: int
    height: int
    video_frame: av.VideoFrame | None = None
    _bgr: np.ndarray | None = field(default=None, repr=False)
    _gray: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_bgr(
        cls, camera_id: str, index: int, t: float, wall: float, image: np.ndarray,
        keyframe: bool = True,
    ) -> Frame:
        """Wrap an already-decoded BGR image (image folders, GIFs, tests)."""
        h, w = image.shape[:2]
        return cls(camera_id, index, t, wall, keyframe, w, h, None, image, None)

    def bgr(self) -> np.ndarray:
        """BGR uint8 HxWx3, converted once on first use."""
        if self._bgr is None:
            if self.video_frame is None:
                raise ValueError("frame has neither a decoded picture nor a BGR image")
            self._bgr = self.video_frame.to_ndarray(format="bgr24")
        return self._bgr

    def gray(self) -> np.ndarray:
        """Luma plane HxW uint8; a view of the decoder's Y plane when it is planar YUV."""
        if self._gray is None:
            vf = self.video_frame
            if vf is not None and vf.format.name in _PLANAR_YUV:
                plane = vf.planes[0]
                buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
                self._gray = buf.reshape(plane.height, plane.line_size)[:, : plane.width]
            else:
                import cv2

                self._gray = cv2.cvtColor(self.bgr(), cv2.COLOR_BGR2GRAY)
        return self._gray

    def release(self) -> None:
        """Drop decoder buffers early; a frame kept for evidence keeps only its BGR copy."""
        if self.video_frame is not None and self._bgr is None:
            self._bgr = self.video_frame.to_ndarray(format="bgr24")
        self.video_frame = None
        self._gray = None


_PLANAR_YUV = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                         "nv12", "gray"})
