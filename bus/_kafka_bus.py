"""``KafkaBus``: the interfaces of ``bus._interfaces`` over the real Kafka (the functions of this package).

Built once from the configuration's bootstrap address; it opens nothing until used, and every client is built
when it is needed, inside the caller's context (so with the Kafka principal the service acts as).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bus._admin import TopicDeclaration, align_size_limits, ensure_topics, existing_partition_counts
from bus._interfaces import Processor, Publisher, Tail
from bus._processor import PinnedPartitionProcessor, ProcessorSpec, TransactionalProcessor
from bus._producer import Producer
from bus._readers import TopicTail, offsets_at, read_range, read_tail, read_to_end
from bus._records import InMessage

__all__ = ["KafkaBus"]


@dataclass(frozen=True, slots=True)
class KafkaBus:
    bootstrap: str

    def publisher(self) -> Publisher:
        return Producer(self.bootstrap)

    def processor(self, spec: ProcessorSpec, *, pinned: Iterable[str] = ()) -> Processor:
        pinned = frozenset(pinned)
        if pinned:
            return PinnedPartitionProcessor(spec, self.bootstrap, pinned=pinned)
        return TransactionalProcessor(spec, self.bootstrap)

    async def read_to_end(self, partitions: Iterable[tuple[str, int]], on_record: Callable[[InMessage], None]
                          ) -> int:
        return await read_to_end(self.bootstrap, partitions, on_record)

    async def read_tail(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], InMessage | None]:
        return await read_tail(self.bootstrap, partitions)

    async def read_range(self, ranges: Iterable[tuple[str, int, int | None, int | None]],
                         on_record: Callable[[InMessage], None]) -> int:
        return await read_range(self.bootstrap, ranges, on_record)

    async def offsets_at(self, partitions: Iterable[tuple[str, int]], timestamp_ms: int
                         ) -> dict[tuple[str, int], int | None]:
        return await offsets_at(self.bootstrap, partitions, timestamp_ms)

    def tail(self, topics: Sequence[str], *, patient: bool = False) -> Tail:
        return TopicTail(self.bootstrap, topics, patient=patient)

    async def ensure_topics(self, specs: Iterable[TopicDeclaration]) -> list[str]:
        return await ensure_topics(self.bootstrap, specs)

    async def align_size_limits(self, specs: Iterable[TopicDeclaration]) -> list[str]:
        return await align_size_limits(self.bootstrap, specs)

    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        return await existing_partition_counts(self.bootstrap, topics)
