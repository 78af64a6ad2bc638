"""Password hashing with Argon2id (argon2-cffi's RFC 9106 defaults).

Verification of an unknown username still costs one hash, so response time does not tell
an attacker which usernames exist.
"""

from __future__ import annotations

import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

MIN_LENGTH = 10
MAX_LENGTH = 256

_hasher = PasswordHasher()
_UNKNOWN_USER_HASH = _hasher.hash("gridwatch: no such user")


def check_strength(password: str, field: str = "password") -> None:
    """Refuse passwords too short to resist an offline guess of a leaked hash."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"{field}: must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"{field}: must be at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches; `stored` None (no such user, no password) never does."""
    try:
        return _hasher.verify(stored or _UNKNOWN_USER_HASH, password) and stored is not None
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        log.error("a stored password hash is unreadable; that account cannot log in")
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    return _hasher.check_needs_rehash(stored)
