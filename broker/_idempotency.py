"""``Idempotency-Key`` for POST /v1/submissions (IETF draft "The Idempotency-Key HTTP Header Field").

Per trader and key: the same key with the same body answers the original response again; the same
key with a different body is refused (422); a key whose first request is still in flight is refused
(409). Completed answers are kept in the compacted topic ``nsw.idempotency`` (retained 48 h, at
least the 24 h the draft asks for), so any ingress instance, and a restarted one, knows them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, InMessage, OutMessage
from broker._topics import IDEMPOTENCY

KEEP_MS: Final = 24 * 3600 * 1000
MAX_KEY_LENGTH: Final = 255


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    status: int
    body: bytes
    created_at: int


Verdict = Literal["new", "replay", "mismatch", "in-flight"]


def fingerprint(body: bytes, content_type: str) -> str:
    return hashlib.sha256(content_type.encode() + b"\n" + body).hexdigest()


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()


class IdempotencyStore:
    """Completed answers for ``KEEP_MS``, at most ``max_keys`` of them (the oldest go first): memory stays
    bounded at any rate. A key forgotten early costs only the replay; the lodgement itself is still
    answered as a duplicate by its content (broker/_lodgement.py)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._done: dict[tuple[str, str], Stored] = {}
        self._in_flight: dict[tuple[str, str], str] = {}
        self.max_keys = max(max_keys, 0)

    def __len__(self) -> int:
        return len(self._done)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def _keep(self, key: tuple[str, str], stored: Stored, *, now: int | None = None) -> None:
        """Keep ``stored`` newest; let expired answers, and the oldest beyond ``max_keys``, go."""
        self._done.pop(key, None)
        self._done[key] = stored
        now = int(time.time() * 1000) if now is None else now
        while self._done:
            oldest, first = next(iter(self._done.items()))
            if len(self._done) <= self.max_keys and now - first.created_at < KEEP_MS:
                return
            del self._done[oldest]

    def check(self, trader: str, key: str, print_: str, *, now: int | None = None) -> tuple[Verdict, Stored | None]:
        now = int(time.time() * 1000) if now is None else now
        stored = self._done.get((trader, key))
        if stored is not None and now - stored.created_at < KEEP_MS:
            return ("replay" if stored.fingerprint == print_ else "mismatch"), stored
        in_flight = self._in_flight.get((trader, key))
        if in_flight is not None:
            return ("in-flight" if in_flight == print_ else "mismatch"), None
        return "new", None

    def begin(self, trader: str, key: str, print_: str) -> None:
        self._in_flight[(trader, key)] = print_

    def abandon(self, trader: str, key: str) -> None:
        """The request failed in a way worth retrying (e.g. Kafka away): forget the key."""
        self._in_flight.pop((trader, key), None)

    def complete(self, trader: str, key: str, stored: Stored) -> OutMessage:
        self._in_flight.pop((trader, key), None)
        self._keep((trader, key), stored)
        value: dict[str, Any] = {
            "trader": trader, "key": key, "fingerprint": stored.fingerprint, "status": stored.status,
            "body": stored.body.decode(), "created_at": stored.created_at,
        }
        return OutMessage(topic=IDEMPOTENCY, key=f"{trader}\x1f{key}".encode(), value=orjson.dumps(value),
                          headers=((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),))

    def apply(self, message: InMessage) -> None:
        """Learn a completed answer from the topic (written by this or another instance)."""
        if not message.value:
            return
        value = orjson.loads(message.value)
        self._keep((value["trader"], value["key"]), Stored(
            value["fingerprint"], value["status"], value["body"].encode(), value["created_at"]
        ))
