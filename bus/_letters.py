"""Dead letters: the original record with headers saying what failed, where and when (pure, no Kafka)."""

from __future__ import annotations

import hashlib
import time

from bus._limits import record_size
from bus._records import Headers, InMessage, OutMessage

__all__ = ["VALUE_OMITTED_HEADER", "dead_letter", "fit_dead_letter", "out_size"]


def dead_letter(
    message: InMessage, error: BaseException, *, service: str, dlq: str, attempts: int = 1, first_failure: int = 0
) -> OutMessage:
    """The original bytes, with headers saying what failed, where and when."""
    now_ms = int(time.time() * 1000)
    now = str(now_ms).encode()
    headers: Headers = (
        *message.headers,
        ("nsw-error-type", error.__class__.__name__.encode()),
        ("nsw-error-message", str(error)[:2000].encode("utf-8", "replace")),
        ("nsw-source-topic", message.topic.encode()),
        ("nsw-source-partition", str(message.partition).encode()),
        ("nsw-source-offset", str(message.offset).encode()),
        ("nsw-service", service.encode()),
        ("nsw-attempts", str(attempts).encode()),
        ("nsw-first-failure", str(first_failure or now_ms).encode()),
        ("nsw-last-failure", now),
    )
    return OutMessage(topic=dlq, key=message.key or b"", value=message.value, headers=headers)


#: On a dead letter whose original value could not fit the dead-letter topic: its size and digest (the
#: original is still on its source topic, at nsw-source-partition/offset).
VALUE_OMITTED_HEADER = "nsw-value-omitted"


def out_size(out: OutMessage) -> int:
    return record_size(out.key, out.value, out.headers)


def fit_dead_letter(letter: OutMessage, limit: int) -> OutMessage:
    """``letter`` as it is when it fits ``limit``; else without its value, saying what it was."""
    if out_size(letter) <= limit:
        return letter
    digest = hashlib.sha256(letter.value).hexdigest()
    note = f"{len(letter.value)} bytes, sha256 {digest}".encode()
    headers = (*((n, v[:2000]) for n, v in letter.headers), (VALUE_OMITTED_HEADER, note))
    return OutMessage(topic=letter.topic, key=letter.key[:1024], value=b"", headers=headers)
