"""Keyed state held in a compacted changelog topic, rebuilt for the partitions a service owns.

A stateful service (router, aggregator) writes each changed value to its changelog in the same
transaction as its output and consumed offsets, so state, output and progress always agree.
When partitions are assigned, the store re-reads those partitions of the changelog; nothing lives
only in memory or on local disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import orjson
import structlog

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, SUBMISSION_HEADER, InMessage, OutMessage
from broker._kafka import read_to_end

log = structlog.get_logger("nsw.state")

V = TypeVar("V")


class ChangelogStore(Generic[V]):
    """Values by submission id, with the partition each belongs to (for timers per partition)."""

    def __init__(self, *, bootstrap: str, topic: str, name: str) -> None:
        self._bootstrap = bootstrap
        self.topic = topic
        self._name = name
        self._values: dict[str, V] = {}
        self._partition: dict[str, int] = {}

    def get(self, key: str) -> V | None:
        return self._values.get(key)

    def put(self, key: str, value: V, *, partition: int) -> OutMessage:
        """Keep ``value`` and return the changelog record to write with the output."""
        self._values[key] = value
        self._partition[key] = partition
        raw = key.encode()
        return OutMessage(
            topic=self.topic,
            key=raw,
            value=orjson.dumps(value),
            headers=((SUBMISSION_HEADER, raw), (CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE)),
        )

    def in_partition(self, partition: int) -> Iterator[tuple[str, V]]:
        for key, value in self._values.items():
            if self._partition.get(key) == partition:
                yield key, value

    def __len__(self) -> int:
        return len(self._values)

    def drop(self, partitions: set[int]) -> None:
        """Forget the keys of ``partitions`` (no longer ours)."""
        for key in [k for k, p in self._partition.items() if p in partitions]:
            del self._values[key]
            del self._partition[key]

    async def restore(self, partitions: set[int]) -> int:
        """Re-read the changelog for ``partitions``, replacing what was known of them."""
        self.drop(partitions)

        def load(message: InMessage) -> None:
            if message.key is None:
                return
            key = message.key.decode()
            if message.value:
                value: Any = orjson.loads(message.value)
                self._values[key] = value
                self._partition[key] = message.partition
            else:
                self._values.pop(key, None)
                self._partition.pop(key, None)

        count = await read_to_end(self._bootstrap, [(self.topic, p) for p in sorted(partitions)], load)
        log.info("state_restored", store=self._name, partitions=sorted(partitions), records=count,
                 keys=len(self._values))
        return count
