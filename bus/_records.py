"""Kafka records as values: what a service writes (``OutMessage``) and what it reads (``InMessage``).

The bottom of the hub's floors: the envelopes above (``broker._envelope``: Avro, the ``nsw-*`` headers) and
every implementation of the bus speak these two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Headers", "InMessage", "OutMessage", "header"]

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes
    value: bytes
    headers: Headers = ()
    #: What ``value`` decodes to, kept by the stage that encoded it for a stage of the same process that reads it
    #: next (``broker._envelope``: decode once). Never written, never compared; None once read from a topic.
    decoded: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InMessage:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: Headers
    #: As ``OutMessage.decoded``: set only on a record handed on within a process, never by a bus.
    decoded: object = field(default=None, compare=False, repr=False)

    def header(self, name: str) -> bytes | None:
        return header(self.headers, name)


def header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
