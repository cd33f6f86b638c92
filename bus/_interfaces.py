"""The small interfaces the services above the Kafka layer receive, instead of a bootstrap string.

    Publisher   start / send (acknowledged) / stop: the ingress's writes, dead letters of read models
    Processor   a transactional processor made from a ``ProcessorSpec``: start, run, request_stop, stop
    Tail        follows whole topics (read models): start, fetch, caught_up, stop
    Reader      reads committed records: to the end (state restores), the last one (chain heads), a tail
    Admin       topics: create what is missing, align size limits, partition counts
    Bus         all of them, built once from the configuration (``KafkaBus``) or in memory (``MemoryBus``)

The real implementation (``bus.KafkaBus``) is proven by the real-Kafka tests; the in-memory one
(``bus.memory.MemoryBus``) is for unit tests of the services above it, as ``httpx.MockTransport`` is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from bus._admin import TopicDeclaration
from bus._processor import ProcessorSpec
from bus._records import InMessage, OutMessage

__all__ = ["Admin", "Bus", "Processor", "Publisher", "Reader", "Tail"]


class Publisher(Protocol):
    """Writes records one at a time; ``send`` returns (partition, offset) once the broker has the record."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, message: OutMessage) -> tuple[int, int]: ...


class Processor(Protocol):
    """consume → handle → produce + commit the consumed offsets, atomically, per partition (``ProcessorSpec``)."""

    spec: ProcessorSpec
    #: Set once the processor owns partitions.
    assigned: asyncio.Event
    processed: int
    dead_lettered: int

    async def start(self) -> None: ...
    async def run(self) -> None: ...
    def request_stop(self) -> None: ...
    async def stop(self) -> None: ...


class Tail(Protocol):
    """Follows whole topics, every partition, committed records only, no consumer group."""

    async def start(self, *, resume: Mapping[tuple[str, int], int] | None = None) -> None: ...
    async def fetch(self, *, timeout_ms: int = 500) -> list[InMessage]: ...
    async def caught_up(self) -> bool: ...
    async def stop(self) -> None: ...


class Reader(Protocol):
    async def read_to_end(self, partitions: Iterable[tuple[str, int]], on_record: Callable[[InMessage], None]
                          ) -> int: ...
    async def read_tail(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], InMessage | None]: ...
    async def read_range(self, ranges: Iterable[tuple[str, int, int | None, int | None]],
                         on_record: Callable[[InMessage], None]) -> int: ...
    async def offsets_at(self, partitions: Iterable[tuple[str, int]], timestamp_ms: int
                         ) -> dict[tuple[str, int], int | None]: ...
    def tail(self, topics: Sequence[str], *, patient: bool = False) -> Tail: ...


class Admin(Protocol):
    async def ensure_topics(self, specs: Iterable[TopicDeclaration]) -> list[str]: ...
    async def align_size_limits(self, specs: Iterable[TopicDeclaration]) -> list[str]: ...
    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int]: ...


class Bus(Reader, Admin, Protocol):
    """Everything a hub service needs of Kafka."""

    def publisher(self) -> Publisher: ...
    def processor(self, spec: ProcessorSpec, *, pinned: Iterable[str] = ()) -> Processor: ...
