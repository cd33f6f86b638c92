"""Kafka records as values: what a service writes (``OutMessage``) and what it reads (``InMessage``).

The bottom of the hub's floors: the envelopes above (``broker._envelope``: Avro, the ``nsw-*`` headers) and
every implementation of the bus speak these two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Headers", "InMessage", "OutMessage", "header"]

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class InMessage:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: Headers

    def header(self, name: str) -> bytes | None:
        return header(self.headers, name)


def header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
