"""The first administrator of a fresh database, so a new installation can be logged into.

The password is taken from GRIDWATCH_ADMIN_PASSWORD; without it one is generated and
written to the log exactly once (it is stored only as a hash, so it cannot be shown again).
"""

from __future__ import annotations

import logging
import os

from gridwatch.auth.accounts import Accounts

log = logging.getLogger(__name__)

PASSWORD_ENV = "GRIDWATCH_ADMIN_PASSWORD"


def ensure_admin(accounts: Accounts, username: str) -> None:
    generated = accounts.ensure_admin(username, os.environ.get(PASSWORD_ENV) or None)
    if generated is None:
        return
    log.warning(
        "\n%s\nFirst start: created administrator %r with the generated password\n\n    %s\n\n"
        "It is shown this once only. Log in and change it, or set %s before the first "
        "start next time.\n%s", "=" * 72, username, generated, PASSWORD_ENV, "=" * 72,
    )
