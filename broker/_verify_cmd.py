"""``nsw verify FILE|-``: check a signed release response and print its verified payload.

The input is a compact JWS, or a JSON document carrying one in ``response_jws`` (a webhook body).
Keys: ``--jwks FILE`` (a JSON Web Key Set), ``--url URL`` (fetched with httpx, e.g. the hub's
``/.well-known/jwks.json``), or by default the hub's own key directory (``NSW_SIGNING_KEY_DIR``,
default ``.nsw/keys``). Responses are signed with Ed25519 (EdDSA), so the published key set is all a
trader needs; tokens of the earlier HS256 keys verify only with a key set holding their secret.

Wiring (in the ``nsw`` parser): ``add_verify_parser(subparsers)``, then ``run_verify(args)`` when the
command is ``verify``. Exit codes: 0 valid; 1 invalid (the reason on stderr); 2 cannot check (unreadable
file, key set unavailable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO, cast

import httpx
import orjson

from broker._config import HubConfig
from broker._signing import KeyStore, SignatureError, verify

__all__ = ["add_verify_parser", "run_verify"]


class _CannotCheckError(Exception):
    """The token or the keys could not be read: neither valid nor invalid."""


def _read_token(source: str, stdin: TextIO) -> str:
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _CannotCheckError(f"cannot read {source}: {exc}") from exc
    text = text.strip()
    if text.startswith("{"):  # a webhook body or a saved response document carrying the JWS
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SignatureError(f"malformed input: JSON that does not parse ({exc})") from exc
        token = document.get("response_jws") if isinstance(document, dict) else None
        if not isinstance(token, str):
            raise SignatureError("malformed input: a JSON document without a response_jws field")
        return token
    return text


def _configured_key_dir(args: argparse.Namespace) -> Path:
    """The hub's signing key folder (NSW_SIGNING_KEY_DIR, else ``<state dir>/keys``) from the settings."""
    settings = getattr(args, "settings", None)  # built by ``nsw`` at start-up
    hub = settings.hub if settings is not None else HubConfig.from_env()
    return cast("Path", hub.signing_dir)


def _keys(args: argparse.Namespace) -> dict[str, Any]:
    try:
        if args.jwks:
            loaded = orjson.loads(Path(args.jwks).read_bytes())
        elif args.url:
            answer = httpx.get(args.url, timeout=10.0, follow_redirects=False)
            answer.raise_for_status()
            loaded = orjson.loads(answer.content)
        else:
            store = KeyStore(Path(args.key_dir) if args.key_dir else _configured_key_dir(args))
            if not store.keys():
                raise _CannotCheckError(f"no signing keys in {store.directory} (give --jwks FILE or --url URL)")
            loaded = store.jwks(private=True)
    except (OSError, httpx.HTTPError, orjson.JSONDecodeError) as exc:
        raise _CannotCheckError(f"cannot load the key set: {exc}") from exc
    if not isinstance(loaded, dict) or not isinstance(loaded.get("keys"), list):
        raise _CannotCheckError('the key set is not a JWKS ({"keys": [...]})')
    return loaded


def add_verify_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("verify", help="check a signed release response (compact JWS) and print it")
    parser.add_argument("file", help="the JWS (or a JSON document with response_jws); - for stdin")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--jwks", help="a JSON Web Key Set file")
    source.add_argument("--url", help="where to fetch the key set, e.g. http://127.0.0.1:8080/.well-known/jwks.json")
    source.add_argument("--key-dir", help="the hub's key directory (default NSW_SIGNING_KEY_DIR or <state dir>/keys)")


def run_verify(args: argparse.Namespace, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
               stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        payload = verify(_read_token(args.file, stdin or sys.stdin), _keys(args))
    except SignatureError as exc:
        err.write(f"invalid: {exc}\n")
        return 1
    except _CannotCheckError as exc:
        err.write(f"nsw verify: {exc}\n")
        return 2
    out.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    err.write("valid\n")
    return 0
