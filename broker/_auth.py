"""Trader authentication on the ingress: API keys (stored only as hashes), rotation, revocation, rate limits.

A key looks like ``nsw_<key id>_<secret>``: the id finds the record, the secret is checked against its
SHA-256 (the secret has 256 bits of entropy, so a slow hash adds nothing). Records live in the compacted
topic ``nsw.api-keys`` (key = key id), so every ingress instance knows every key, and a revocation (the
record again with ``revoked_at``) reaches all of them. Rotation is issuing a new key, then revoking the old.

Agencies have keys of their own in the same topic (``agency`` set): such a key authenticates the agency on
its decision callback and nothing else; a trader key never authenticates an agency, nor an agency key a
trader. An agency without a key cannot call back at all (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NotRequired, TypedDict

import orjson

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, InMessage, OutMessage
from broker._topics import API_KEYS
from broker.errors import MessageError

TOKEN_PREFIX: Final = "nsw_"  # noqa: S105 - the public prefix of every key, not a secret
DEV_TRADER: Final = "dev-trader"
DEV_KEY_FILE: Final = "dev-trader.key"

#: Paths anyone may call: health, API description, published signing keys, agency callbacks (own tokens), the
#: console (its own sessions: console/_app.py).
PUBLIC_PREFIXES: Final = ("/healthz", "/readyz", "/openapi.json", "/.well-known/", "/v1/agencies/", "/metrics",
                          "/console")


class KeyRecord(TypedDict):
    key_id: str
    trader: str
    hash: str
    created_at: int
    revoked_at: int | None
    #: Set for an agency's callback key (``trader`` is then ``agency:<agency>``, for listings).
    agency: NotRequired[str | None]


AGENCY_PRINCIPAL_PREFIX: Final = "agency:"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(trader: str, *, now: int | None = None, agency: str | None = None) -> tuple[str, KeyRecord]:
    """A fresh token (shown once) and the record to store (without the secret); ``agency`` makes it
    that agency's callback key instead of a trader's."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record: KeyRecord = {"key_id": key_id, "trader": f"{AGENCY_PRINCIPAL_PREFIX}{agency}" if agency else trader,
                         "hash": _hash(secret), "created_at": int(time.time() * 1000) if now is None else now,
                         "revoked_at": None, "agency": agency}
    return f"{TOKEN_PREFIX}{key_id}_{secret}", record


def key_message(record: KeyRecord) -> OutMessage:
    return OutMessage(topic=API_KEYS, key=record["key_id"].encode(), value=orjson.dumps(record),
                      headers=((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),))


def key_record(message: InMessage) -> KeyRecord:
    """The key record in ``message``, checked field by field: a malformed record must neither replace a
    good one (it could lock a trader out, or make authentication fail) nor stop the reader."""
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        raise MessageError(f"an API key record is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise MessageError(f"an API key record is a JSON object, not {type(value).__name__}")
    wrong = [name for name in ("key_id", "trader", "hash") if not isinstance(value.get(name), str) or not value[name]]
    if not isinstance(value.get("created_at"), int):
        wrong.append("created_at")
    revoked = value.get("revoked_at")
    if revoked is not None and not isinstance(revoked, int):
        wrong.append("revoked_at")
    if not wrong and (len(value["hash"]) != 64 or any(c not in "0123456789abcdef" for c in value["hash"])):
        wrong.append("hash")
    agency = value.get("agency")
    if agency is not None and (not isinstance(agency, str) or value["trader"] != f"{AGENCY_PRINCIPAL_PREFIX}{agency}"):
        wrong.append("agency")
    if not wrong and message.key is not None and message.key != value["key_id"].encode():
        wrong.append("key_id (not the record's key)")
    if wrong:
        raise MessageError(f"an API key record with missing or malformed fields: {', '.join(wrong)}")
    return {"key_id": value["key_id"], "trader": value["trader"], "hash": value["hash"],
            "created_at": value["created_at"], "revoked_at": revoked, "agency": agency}


class KeyStore:
    def __init__(self) -> None:
        self._records: dict[str, KeyRecord] = {}

    def learn(self, record: KeyRecord) -> None:
        self._records[record["key_id"]] = record

    def apply(self, message: InMessage) -> None:
        """Learn a record of ``nsw.api-keys``; MessageError (nothing learnt) when it is not a key record."""
        if message.value:
            self.learn(key_record(message))

    def records(self) -> list[KeyRecord]:
        return sorted(self._records.values(), key=lambda r: (r["trader"], r["created_at"]))

    def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    def _valid(self, token: str) -> KeyRecord | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        key_id, _, secret = token[len(TOKEN_PREFIX):].partition("_")
        record = self._records.get(key_id)
        if record is None or record["revoked_at"] is not None or not secret:
            return None
        return record if hmac.compare_digest(record["hash"], _hash(secret)) else None

    def authenticate(self, token: str) -> str | None:
        """The trader a valid, unrevoked trader token belongs to; None otherwise (agency keys included)."""
        record = self._valid(token)
        if record is None or record.get("agency") or record["trader"].startswith(AGENCY_PRINCIPAL_PREFIX):
            return None
        return record["trader"]

    def authenticate_agency(self, token: str) -> str | None:
        """The agency a valid, unrevoked agency token belongs to; None otherwise (trader keys included)."""
        record = self._valid(token)
        agency = record.get("agency") if record is not None else None
        return agency if isinstance(agency, str) and agency else None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per trader: ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(self, *, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, trader: str) -> float:
        """0 when allowed; otherwise the seconds to wait before the next request may pass."""
        now = self._clock()
        bucket = self._buckets.get(trader)
        if bucket is None:
            bucket = self._buckets[trader] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate


def client_auth_headers(key: str | None, *, api_key: str | None = None, state_dir: Path | None = None
                        ) -> dict[str, str]:
    """``Authorization`` for the hub's own clients (CLI, bench): ``key``, else ``api_key`` (NSW_API_KEY), else the
    development trader's key in ``state_dir``. Without ``state_dir`` (a tool that was handed no settings) both are
    read from the configuration now."""
    if state_dir is None:
        from broker._config import HubConfig  # noqa: PLC0415 - configuration is read only when a client needs it
        from config import ClientSettings  # noqa: PLC0415

        api_key, state_dir = ClientSettings.from_env().api_key, HubConfig.from_env().state_dir
    token = key or api_key or read_dev_key(state_dir)
    return {"Authorization": f"Bearer {token}"} if token else {}


def read_dev_key(state_dir: Path) -> str | None:
    path = state_dir / DEV_KEY_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_dev_key(state_dir: Path, token: str) -> Path:
    """The development trader's key, readable by this user only (``.nsw/`` is git-ignored)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / DEV_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return path


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class AuthMiddleware:
    """ASGI middleware: 401 without a valid key, 429 over the trader's rate; sets ``scope["nsw.trader"]``."""

    def __init__(self, app: App, *, keys: KeyStore, limiter: RateLimiter) -> None:
        self._app, self._keys, self._limiter = app, keys, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC_PREFIXES):
            await self._app(scope, receive, send)
            return
        token = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                token = credentials.strip() if scheme.lower() == "bearer" else ""
                break
        trader = self._keys.authenticate(token) if token else None
        if trader is None:
            detail = "send Authorization: Bearer <API key>" if not token else "the API key is not valid or was revoked"
            await _problem(send, 401, "unauthenticated", "Authentication required", detail,
                           headers=[(b"www-authenticate", b'Bearer realm="nsw"')])
            return
        wait = self._limiter.take(trader)
        if wait > 0:
            await _problem(send, 429, "rate-limited", "Too many requests", f"trader {trader} is over its rate limit",
                           headers=[(b"retry-after", str(max(1, round(wait))).encode())])
            return
        scope["nsw.trader"] = trader
        await self._app(scope, receive, send)


async def _problem(send: Send, status: int, slug: str, title: str, detail: str, *,
                   headers: list[tuple[bytes, bytes]]) -> None:
    body = orjson.dumps({"type": f"https://nsw-broker.dev/problems/{slug}", "title": title, "status": status,
                         "detail": detail, "errors": []})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
