"""Keyed state held in a compacted changelog topic, rebuilt for the partitions a service owns.

A stateful service (router, aggregator) writes each changed value to its changelog in the same
transaction as its output and consumed offsets, so state, output and progress always agree.
When partitions are assigned, the store re-reads those partitions of the changelog; nothing lives
only in memory or on local disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import orjson
import structlog

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, SUBMISSION_HEADER, InMessage, OutMessage
from broker._tail import DeadLetters, guarded
from broker.errors import MessageError
from bus import Bus

log = structlog.get_logger("nsw.state")

V = TypeVar("V")


class ChangelogStore(Generic[V]):
    """Values by submission id, with the partition each belongs to (for timers per partition).

    ``active`` says which values timers still care about (an open submission, a pending delivery):
    ``in_partition`` walks only those, so a timer's cost follows the open work, not all history.
    """

    def __init__(self, *, bus: Bus, topic: str, name: str, active: Callable[[V], bool] | None = None,
                 valid: Callable[[Any], bool] = lambda value: isinstance(value, dict)) -> None:
        self._bus = bus
        #: Whether a value read back is one this store holds; anything else is a bad record, reported and skipped.
        self._valid = valid
        self._letters = DeadLetters(bus)
        self.topic = topic
        self._name = name
        self._values: dict[str, V] = {}
        self._partition: dict[str, int] = {}
        self._active = active if active is not None else (lambda _value: True)
        self._open: dict[int, dict[str, None]] = {}

    def get(self, key: str) -> V | None:
        return self._values.get(key)

    def _keep(self, key: str, value: V, partition: int) -> None:
        self._values[key] = value
        self._partition[key] = partition
        if self._active(value):
            self._open.setdefault(partition, {})[key] = None
        else:
            self._open.get(partition, {}).pop(key, None)

    def _forget(self, key: str) -> None:
        self._values.pop(key, None)
        partition = self._partition.pop(key, None)
        if partition is not None:
            self._open.get(partition, {}).pop(key, None)

    def put(self, key: str, value: V, *, partition: int) -> OutMessage:
        """Keep ``value`` and return the changelog record to write with the output."""
        self._keep(key, value, partition)
        raw = key.encode()
        return OutMessage(
            topic=self.topic,
            key=raw,
            value=orjson.dumps(value),
            headers=((SUBMISSION_HEADER, raw), (CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE)),
        )

    def delete(self, key: str, *, partition: int) -> OutMessage:
        """Forget ``key`` and return the tombstone to write with the output."""
        self._forget(key)
        raw = key.encode()
        return OutMessage(topic=self.topic, key=raw, value=b"", headers=((SUBMISSION_HEADER, raw),))

    def in_partition(self, partition: int) -> Iterator[tuple[str, V]]:
        """The active values of ``partition`` (a snapshot: the caller may put while iterating)."""
        for key in list(self._open.get(partition, ())):
            yield key, self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def drop(self, partitions: set[int]) -> None:
        """Forget the keys of ``partitions`` (no longer ours)."""
        for key in [k for k, p in self._partition.items() if p in partitions]:
            self._forget(key)
        for partition in partitions:
            self._open.pop(partition, None)

    async def restore(self, partitions: set[int]) -> int:
        """Re-read the changelog for ``partitions``, replacing what was known of them."""
        self.drop(partitions)

        def load(message: InMessage) -> None:
            if message.key is None:
                return
            key = message.key.decode()
            if message.value:
                value: Any = orjson.loads(message.value)
                if not self._valid(value):
                    raise MessageError(f"{self._name} changelog: a value of an unexpected shape "
                                       f"({type(value).__name__})")
                self._keep(key, value, message.partition)
            else:
                self._forget(key)

        # A record that cannot be read back is reported and skipped: restoring again would meet it again,
        # and a service that cannot restore would be restarted on it forever.
        reader = guarded(load, reader=f"{self._name}-restore", letters=self._letters)
        count = await self._bus.read_to_end([(self.topic, p) for p in sorted(partitions)], reader)
        (log.info if count else log.debug)("state_restored", store=self._name, partitions=sorted(partitions),
                                           records=count, keys=len(self._values))  # nothing restored: debug
        return count
