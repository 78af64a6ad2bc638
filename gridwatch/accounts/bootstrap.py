"""The first administrator of a fresh database, so a new installation can be logged into.

The password is taken from GRIDWATCH_ADMIN_PASSWORD; without it one is generated and
written to the log exactly once (it is stored only as a hash, so it cannot be shown again).
"""

from __future__ import annotations

import logging
import os

from gridwatch.accounts.store import AccountConflict, Accounts
from gridwatch.settings import ConfigError

log = logging.getLogger(__name__)

PASSWORD_ENV = "GRIDWATCH_ADMIN_PASSWORD"


def ensure_admin(accounts: Accounts, username: str) -> None:
    """Raises `ConfigError` (a message, not a traceback, from the CLI) when the configured
    name or the password from the environment cannot be used."""
    try:
        generated = accounts.ensure_admin(username, os.environ.get(PASSWORD_ENV) or None)
    except (AccountConflict, ValueError) as err:
        raise ConfigError("first administrator", [str(err)]) from None
    if generated is None:
        return
    log.warning(
        "\n%s\nFirst start: created administrator %r with the generated password\n\n    %s\n\n"
        "It is shown this once only. Log in and change it, or set %s before the first "
        "start next time.\n%s", "=" * 72, username, generated, PASSWORD_ENV, "=" * 72,
    )
