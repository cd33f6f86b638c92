"""Console sessions: a signed cookie with an absolute and an idle expiry, and a CSRF token per session.

The cookie carries who is signed in, when the session began and was last used, a random nonce and a
"generation" of the credential (a password change or key rotation ends the session); it is signed with
HMAC-SHA256 under the console key (``NSW_CONSOLE_KEY`` or ``<state dir>/console.key``; every instance of a
deployment needs the same one). The CSRF token is derived from the session's nonce, so a form from another
session, or from no session, is refused. Cookies are HttpOnly, SameSite=Strict and Secure behind https.

Before anyone is signed in, the sign-in forms are protected against login CSRF (another site signing the
browser in to the attacker's account) by a pre-session: a short-lived signed cookie (``PRE_COOKIE``) with a
random nonce, and the token derived from it in the hidden field ``login_csrf`` (a signed double submit). A form
posted without both, or with a token of another pre-session, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal

import orjson

from broker._state_keys import state_key
from broker.errors import NSWError

__all__ = ["COOKIE", "PRE_COOKIE", "PRE_LIFETIME", "ConsoleKeyError", "Session", "SessionCodec", "load_console_key"]

COOKIE: Final = "nsw_console"
#: The pre-session of the sign-in forms, and how long one lasts (a sign-in page left open longer is reloaded).
PRE_COOKIE: Final = "nsw_console_pre"
PRE_LIFETIME: Final = 2 * 3600.0
#: Sessions signed out and not yet expired that one instance remembers (the oldest are forgotten beyond).
MAX_ENDED: Final = 100_000
KEY_FILE: Final = "console.key"


class ConsoleKeyError(NSWError, ValueError):
    """The console key is malformed (not retriable)."""


@dataclass(frozen=True, slots=True)
class Session:
    kind: Literal["officer", "trader"]
    subject: str
    generation: str
    issued_at: float
    seen_at: float
    nonce: str


class SessionCodec:
    def __init__(self, key: bytes, *, lifetime: float = 8 * 3600.0, idle: float = 30 * 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.lifetime, self.idle, self._clock = lifetime, idle, clock
        #: Nonce -> when the session would have expired: signed out here, refused until then.
        self._ended: dict[str, float] = {}

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def new(self, kind: Literal["officer", "trader"], subject: str, generation: str) -> Session:
        now = self._clock()
        return Session(kind, subject, generation, now, now, secrets.token_urlsafe(16))

    def encode(self, session: Session) -> str:
        payload = orjson.dumps([session.kind, session.subject, session.generation, round(session.issued_at, 3),
                                round(session.seen_at, 3), session.nonce])
        return f"{base64.urlsafe_b64encode(payload).decode().rstrip('=')}.{self._sign(payload)}"

    def decode(self, cookie: str) -> Session | None:
        """The session of a cookie this key signed, still within its lifetime and idle time; else None."""
        data, _, signature = cookie.partition(".")
        if not data or not signature or len(cookie) > 4096:
            return None
        try:
            payload = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            kind, subject, generation, issued, seen, nonce = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
        now = self._clock()
        if kind not in ("officer", "trader") or now - issued > self.lifetime or now - seen > self.idle \
                or str(nonce) in self._ended:
            return None
        return Session(kind, str(subject), str(generation), float(issued), float(seen), str(nonce))

    def end(self, session: Session) -> None:
        """Sign ``session`` out: its cookie is refused from now on (by this instance: another instance of a
        deployment still takes a copy of it until it expires, at most ``idle`` after its last use)."""
        now = self._clock()
        if len(self._ended) >= MAX_ENDED:
            self._ended = {n: until for n, until in self._ended.items() if until > now}
            while len(self._ended) >= MAX_ENDED:
                self._ended.pop(next(iter(self._ended)))
        self._ended[session.nonce] = session.issued_at + self.lifetime

    def touch(self, session: Session) -> Session:
        return replace(session, seen_at=self._clock())

    def csrf(self, session: Session) -> str:
        return self._sign(f"csrf\x1f{session.nonce}".encode())

    def csrf_ok(self, session: Session, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(session), token)

    # --- the pre-session of the sign-in forms (login CSRF) ------------------------------------------

    def new_presession(self) -> str:
        """A pre-session cookie value: ``<nonce>.<issued>.<signature>``."""
        payload = f"{secrets.token_urlsafe(16)}.{int(self._clock())}"
        signature = self._sign(f"pre\x1f{payload}".encode())
        return f"{payload}.{signature}"

    def presession_token(self, cookie: str | None) -> str | None:
        """The token a sign-in form of this pre-session carries; None for a forged, foreign or old cookie."""
        if not cookie or len(cookie) > 256:
            return None
        payload, _, signature = cookie.rpartition(".")
        nonce, _, issued = payload.partition(".")
        if not nonce or not issued.isdigit() or not hmac.compare_digest(self._sign(f"pre\x1f{payload}".encode()),
                                                                          signature):
            return None
        age = self._clock() - int(issued)
        if age < -60 or age > PRE_LIFETIME:
            return None
        return self._sign(f"login-csrf\x1f{nonce}".encode())

    def presession_ok(self, cookie: str | None, token: str) -> bool:
        expected = self.presession_token(cookie)
        return expected is not None and bool(token) and hmac.compare_digest(expected, token)


def _decode_key(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConsoleKeyError(f"{origin}: not base64") from None
    if len(key) < 32:
        raise ConsoleKeyError(f"{origin}: {len(key)} bytes, the console key needs at least 32")
    return key


def load_console_key(state_dir: Path, env: str | None = None) -> bytes:
    """``env`` (NSW_CONSOLE_KEY, base64) when given, else the state dir's key file, created if absent."""
    return state_key(state_dir, KEY_FILE, env=env, env_name="NSW_CONSOLE_KEY", size=32, decode=_decode_key)
