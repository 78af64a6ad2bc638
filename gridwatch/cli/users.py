"""`gridwatch users add|list|token`: manage accounts from the server's shell.

Whoever can run this can read the configuration and the database anyway, so the commands
act as a whole-city administrator; each change is audited as `cli:<os user>`.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from gridwatch.accounts.store import (
    AccountConflict,
    AccountNotFound,
    Accounts,
    OutOfScope,
    Role,
    User,
)
from gridwatch.alerts.incidents.grid import WHOLE_CITY, Grid
from gridwatch.alerts.store.incident_store import open_store
from gridwatch.settings import GridwatchSettings, load_config

EXIT_USAGE = 2


def _accounts(config: GridwatchSettings) -> Accounts:
    store = open_store(config.storage.url)
    grid = Grid.from_settings(config.grid, {c.id: c.grid_cell for c in config.cameras})
    return Accounts(store, grid)


def _operator() -> User:
    return User(0, f"cli:{getpass.getuser()}", Role.ADMIN, WHOLE_CITY, None, "cli")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("password: no terminal to ask on; pipe it with --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise ValueError("password: the two entries differ")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    accounts = _accounts(load_config(args.config))
    try:
        return _dispatch(accounts, args)
    except (ValueError, AccountConflict, AccountNotFound, OutOfScope) as err:
        print(f"users {args.users_command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        accounts.store.close()


def _dispatch(accounts: Accounts, args: argparse.Namespace) -> int:
    actor = _operator()
    if args.users_command == "add":
        accounts.grid.node(args.scope)
        password = _read_password(args.password_stdin)
        made = accounts.create_user(actor, args.username, password, args.role, args.scope)
        print(f"created {made.username} ({made.role.value}, scope {made.scope})")
    elif args.users_command == "list":
        for a in accounts.list_users(actor):
            state = " disabled" if a.disabled else ""
            print(f"{a.username:<24} {a.role.value:<9} {a.scope}{state}")
    elif args.users_command == "token":
        info, secret = accounts.create_token(actor, args.username, args.name, args.expires_days)
        print(f"token {info.name!r} for {info.username} (id {info.id}); shown once:",
              file=sys.stderr)
        print(secret)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="manage console users and API tokens")
    users.add_argument("--config", help="YAML file (default: the bundled demo)")
    users.set_defaults(func=cmd_users)
    commands = users.add_subparsers(dest="users_command", required=True)
    add = commands.add_parser("add", help="create a user (password asked, or --password-stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--scope", default=WHOLE_CITY,
                     help="grid node the user sees: city (default), a township, community or cell")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    commands.add_parser("list", help="list users with role and scope")
    token = commands.add_parser("token", help="make an API token (printed once on stdout)")
    token.add_argument("username", help="the user the token acts as")
    token.add_argument("--name", required=True, help="what uses the token, e.g. gis-sync")
    token.add_argument("--expires-days", type=float)
