"""``nsw officers``: console accounts of agency officers, supervisors and operators, from the command line.

Written straight to ``nsw.officers`` on Kafka as the key tool's principal (``nsw-keys``, the one writer of
credentials, as ``nsw keys`` is), so no running hub is needed and every hub instance learns the change from
the topic. A generated password is printed once; the hub keeps only its scrypt hash. Each record names who
ran the command (the OS user, or ``--by``): the auditor chains it, so who gave whom access is provable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
from typing import Any, cast

import orjson
import structlog

from broker._config import HubConfig
from broker._keys_io import publish_registry_record, read_registry
from broker._logging import configure_logging
from broker._topics import OFFICERS
from bus._auth import KEY_TOOL, KafkaAuthConfigError, acting_as
from console._accounts import (
    MAX_PASSWORD,
    USERNAME,
    OfficerRecord,
    OfficerStore,
    account_summary,
    changed,
    new_officer,
    officer_message,
)
from console._principal import Role

__all__ = ["add_officers_parser", "load_officers", "publish_officer", "run_officers"]

log = structlog.get_logger("nsw.officers")

ROLE_CHOICES = ("officer", "supervisor", "operator")


def add_officers_parser(sub: Any) -> None:  # argparse's _SubParsersAction is private
    officers = sub.add_parser("officers", help="console accounts of agency officers and operators: "
                                               "create, list, revoke, passwd")
    actions = officers.add_subparsers(dest="officers_command", required=True)
    create = actions.add_parser("create", help="a new account; its password is printed once")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=ROLE_CHOICES,
                        help="officer or supervisor of --agency; operator (no agency): the hub's operations")
    create.add_argument("--agency", default=None, help="the agency of an officer or supervisor (e.g. sps)")
    create.add_argument("--name", default="", help='the name the console shows, e.g. "Alice Ng"')
    listing = actions.add_parser("list", help="every account (never a hash)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    revoke = actions.add_parser("revoke", help="end an account; its open sessions end with their next request")
    revoke.add_argument("username")
    passwd = actions.add_parser("passwd", help="a new password (printed once); every open session ends")
    passwd.add_argument("username")
    for parser in (create, passwd):
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from the first line of standard input instead")
    for parser in (create, listing, revoke, passwd):
        parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    for parser in (create, revoke, passwd):
        parser.add_argument("--by", default=None, help="who gives or takes the access, for the audit chain "
                                                       "(default: the OS user running the command)")


def run_officers(args: argparse.Namespace) -> int:
    config = HubConfig.of(args, bootstrap=args.bootstrap)
    problem = _create_problem(args, config) if args.officers_command == "create" else ""
    if problem:  # answered before anything is set up or read
        return _fail(args, problem, 2)
    configure_logging(fmt=config.log_format, level=config.log_level)  # on stderr: stdout is the answer
    try:
        auth = config.kafka.auth_for(KEY_TOOL)
    except KafkaAuthConfigError as exc:
        return _fail(args, str(exc), 2)
    with acting_as(auth):
        return asyncio.run(_run(args, config))


async def publish_officer(bootstrap: str, record: OfficerRecord) -> None:
    await publish_registry_record(bootstrap, officer_message(record))


async def load_officers(bootstrap: str) -> OfficerStore:
    """Every account on the topic; a malformed record is skipped with a warning (the hub reports it)."""
    store = OfficerStore()
    await read_registry(bootstrap, OFFICERS, store.apply, skipped="officer_record_skipped")
    return store


def _fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    sys.stderr.write(f"nsw officers {getattr(args, 'officers_command', '')}: {message}\n")
    return code


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by).strip()[:128]
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return "unknown"


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password and whether it was generated (then printed once)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")[:MAX_PASSWORD + 1], False
    return secrets.token_urlsafe(18), True


async def _run(args: argparse.Namespace, config: HubConfig) -> int:
    command = args.officers_command
    store = await load_officers(config.bootstrap)
    if command == "list":
        return _list(store, as_json=args.json)
    username = args.username.strip().lower()
    found = store.get(username)
    if command == "create":
        if found is not None and found["revoked_at"] is None:
            return _fail(args, f"{username} exists; `nsw officers passwd {username}` gives it a new password")
        password, generated = _password(args)
        try:
            record = new_officer(username, role=cast(Role, args.role), agency=args.agency, password=password,
                                 display=args.name.strip(), by=_who(args))
        except ValueError as exc:
            return _fail(args, str(exc), 2)
    elif found is None or found["revoked_at"] is not None:
        return _fail(args, f"no active account {username}")
    elif command == "passwd":
        password, generated = _password(args)
        try:
            record = changed(found, "password", by=_who(args), password=password)
        except ValueError as exc:
            return _fail(args, str(exc), 2)
    else:
        record, generated, password = changed(found, "revoked", by=_who(args)), False, ""
    await publish_officer(config.bootstrap, record)
    out: dict[str, Any] = {k: v for k, v in account_summary(record).items() if k not in ("created_at", "changed_at")}
    if generated:
        out |= {"password": password, "note": "shown once: the hub keeps only its hash"}
    if command == "passwd":
        out["note"] = "every open session of the account has ended" + (
            "; the new password is shown once" if generated else "")
    _print_json(out)
    return 0


def _create_problem(args: argparse.Namespace, config: HubConfig) -> str:
    """Why ``create`` cannot be done (before anything is read or hashed), or ''."""
    if not USERNAME.fullmatch(args.username.strip().lower()):
        return "a user name is 2-64 characters: lower-case letters, digits, '.', '_', '-', a letter first"
    if args.role == "operator":
        return "an operator belongs to no agency; leave out --agency" if args.agency else ""
    if not args.agency:
        return f"an {args.role} belongs to an agency: give --agency ({', '.join(config.agencies)})"
    if args.agency not in config.agencies:
        return f"no agency {args.agency}; known: {', '.join(config.agencies)}"
    return ""


def _list(store: OfficerStore, *, as_json: bool) -> int:
    rows = [account_summary(r) for r in store.records()]
    if as_json:
        _print_json(rows)
        return 0
    header = ("USER", "AGENCY", "ROLE", "NAME", "STATE", "LAST CHANGE BY")
    table = [header] + [(str(r["username"]), str(r["agency"] or "-"), str(r["role"]), str(r["display"]),
                         "revoked" if r["revoked_at"] is not None else "active", f"{r['event']} by {r['by'] or '?'}")
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
    return 0
