"""Map what PyAV/FFmpeg raise onto camera states, with a reason a human can act on."""

from __future__ import annotations

import av.error

from gridwatch.common.redact import describe_error
from gridwatch.ingest.state import CameraState


class SourceError(Exception):
    """A source could not be opened or read; `state` says which kind of failure it is.

    The message never holds credentials: it is built from redacted text only.
    """

    def __init__(self, state: CameraState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


_TIMEOUTS = (TimeoutError, av.error.ExitError)
"""ExitError is how PyAV's timeout interrupt surfaces in the middle of a read."""

# Ordered: the first matching class wins (HTTP errors before the generic FFmpeg ones).
_RULES: tuple[tuple[tuple[type[BaseException], ...], CameraState, str], ...] = (
    ((av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, PermissionError),
     CameraState.AUTH_FAILED, "credentials rejected"),
    ((av.error.HTTPNotFoundError, FileNotFoundError, NotADirectoryError),
     CameraState.NOT_FOUND, "no such stream or file"),
    ((av.error.HTTPBadRequestError, av.error.HTTPOtherClientError, av.error.InvalidDataError,
      av.error.DecoderNotFoundError, av.error.DemuxerNotFoundError,
      av.error.ProtocolNotFoundError, av.error.PatchWelcomeError),
     CameraState.UNSUPPORTED, "not a stream we can decode"),
    ((ConnectionRefusedError,), CameraState.OFFLINE, "connection refused"),
    (_TIMEOUTS, CameraState.OFFLINE, "timed out"),
)


def classify(exc: BaseException, *, connected: bool) -> SourceError:
    """A SourceError for `exc`; a timeout while frames were flowing means `stalled`."""
    if isinstance(exc, SourceError):
        return exc
    if connected and isinstance(exc, _TIMEOUTS):
        return SourceError(CameraState.STALLED,
                           f"no data within the read timeout ({describe_error(exc)})")
    for types, state, summary in _RULES:
        if isinstance(exc, types):
            return SourceError(state, f"{summary} ({describe_error(exc)})")
    return SourceError(CameraState.OFFLINE, describe_error(exc))
