"""Keep stream passwords out of logs, errors and API answers.

PyAV puts the full URL, password included, into every exception message, so anything
derived from a URL or an exception goes through `redact` before it is shown.
"""

from __future__ import annotations

import re

# The password may itself contain '@' when it was not URL-encoded: the credentials end at
# the LAST '@' before the host, i.e. the one followed by host characters and then a path,
# a quote, whitespace or the end.
_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/\s@]*):(?P<secret>\S*?)@"
    r"(?=[^@\s/'\"]*(?:[/\s'\"?#]|$))"
)


def redact(text: str) -> str:
    """Replace the password of every URL in `text` with `***`, keeping the user name."""
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def describe_error(exc: BaseException) -> str:
    """An exception as `Type: message` with credentials removed.

    FFmpeg errors carry their text in `strerror` and the URL in `filename`; the URL is left
    out (callers name the stream themselves) and so is FFmpeg's meaningless errno.
    """
    message = redact(getattr(exc, "strerror", None) or str(exc)) or "no details"
    return f"{type(exc).__name__}: {message}"
