"""Downloading and verifying pinned files (model weights, demo footage).

A file is only ever used after its sha256 matches the pin: a truncated download or a swapped
file would otherwise give silently wrong results. Downloads go to a temp file beside the
target and are renamed only once verified, so readers never see a partial file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from gridwatch.models.errors import ChecksumMismatchError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so restarts in-process don't re-hash."""
    st = path.stat()
    return _sha256_of(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify_file(path: Path, expected_sha256: str) -> None:
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ChecksumMismatchError(path, expected_sha256, actual)


def offline() -> bool:
    """$GRIDWATCH_OFFLINE turns every download off (air-gapped sites, tests)."""
    return os.environ.get("GRIDWATCH_OFFLINE", "") not in ("", "0")


def fetch_verified(
    url: str, sha256: str, target: Path, *, label: str, timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download `url` to `target`, verifying `sha256` before the file becomes visible."""
    if offline():
        raise OSError("downloads are off (GRIDWATCH_OFFLINE is set)")
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from %s to %s", label, url, target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _fetch(url, out, timeout)
            out.flush()
            os.fsync(out.fileno())
        if actual != sha256:
            raise ChecksumMismatchError(f"{url} (download for {target})", sha256, actual)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("%s downloaded and verified: %s", label, target)
    return target


def _fetch(url: str, out: BinaryIO, timeout: float) -> str:
    """Stream `url` into `out`, returning the sha256 of what was written."""
    for attempt in Retrying(
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=1, max=8),
        retry=retry_if_exception(_is_transient),
        reraise=True,
    ):
        with attempt:
            out.seek(0)
            out.truncate()
            digest = hashlib.sha256()
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()


def _is_transient(exc: BaseException) -> bool:
    """Retry server hiccups and timeouts; an unknown host or a 404 will not fix itself."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    return isinstance(exc, TimeoutError | ConnectionResetError)
