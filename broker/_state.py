"""Keyed state held in a compacted changelog topic, rebuilt for the partitions a service owns.

A stateful service (router, aggregator) writes each changed value to its changelog in the same
transaction as its output and consumed offsets, so state, output and progress always agree.
When partitions are assigned, the store re-reads those partitions of the changelog; nothing lives
only in memory or on local disk.

Memory holds the open work: a value its store no longer calls active (a final submission) leaves memory
``retain_seconds`` after it was written, or sooner beyond ``max_inactive`` such values (never younger than
``MIN_AGE_MS``, so that its transaction has committed). The store then keeps only a compact row (its
partition and when it was written, broker/_archive.py); ``needs_load`` says a key is such, and ``load``
reads its value back from the changelog around that time, before a handler uses it (an amendment, a late
decision).

A store given ``due`` (the time a timer next needs a value) lets active values go too, after the same
retention: open work that waits long on a clock (an IPR suspension runs ten working days) would otherwise
hold memory for every open case. Such a value leaves its due time in ``timers`` (on disk,
broker/_archive.py); ``due_keys`` gives a timer the keys due now, to read back before it walks
``in_partition``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Final, Generic, TypeVar

import orjson
import structlog

from broker._archive import CompactIndex, TimerIndex
from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, SUBMISSION_HEADER, InMessage, OutMessage
from broker._tail import DeadLetters, guarded
from broker.errors import MessageError
from bus import Bus
from errors import NSWError

log = structlog.get_logger("nsw.state")

V = TypeVar("V")

#: An inactive value is never evicted younger than this (ms): its transaction has long committed.
MIN_AGE_MS: Final = 10_000
#: A value read back is looked for from this long before it was written (ms; clocks and batching)...
LOAD_BEFORE_MS: Final = 30_000
#: ...to this long after (a transaction retried, a slow commit).
LOAD_AFTER_MS: Final = 300_000


class Evicted(NSWError):  # noqa: N818 - a signal between a store's user and its handler, not an error anyone sees
    """The value of this key left memory: read it back (``ChangelogStore.load``) before handling the record."""

    retriable = True

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.submission_id = key


class ChangelogStore(Generic[V]):
    """Values by submission id, with the partition each belongs to (for timers per partition).

    ``active`` says which values timers still care about (an open submission, a pending delivery):
    ``in_partition`` walks only those, so a timer's cost follows the open work, not all history.
    """

    def __init__(self, *, bus: Bus, topic: str, name: str, active: Callable[[V], bool] | None = None,
                 valid: Callable[[Any], bool] = lambda value: isinstance(value, dict),
                 retain_seconds: float | None = None, max_inactive: int | None = None,
                 due: Callable[[V], int | None] | None = None, clock: Callable[[], float] = time.time) -> None:
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
        #: None for both: every value stays in memory (as before eviction existed).
        self._retain_ms = None if retain_seconds is None else int(retain_seconds * 1000)
        self._max_inactive = max_inactive
        self._clock = clock
        #: Inactive keys in memory: (when their retention started, when their value was written), epoch ms.
        self._inactive: OrderedDict[str, tuple[int, int]] = OrderedDict()
        #: With ``due``: active keys in memory that may leave it too, as ``_inactive``; and the due times of those
        #: that left (a timer reads them back when due).
        self._due = due
        self._resting: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self.timers = TimerIndex()
        #: Evicted keys: (partition, when the value was written).
        self.archive = CompactIndex(width=2)
        self.evicted = 0
        self.loaded = 0

    def get(self, key: str) -> V | None:
        """The value in memory; None for an unknown key and for an evicted one (see ``needs_load``)."""
        return self._values.get(key)

    def needs_load(self, key: str) -> bool:
        """Whether ``key`` was evicted: its value is in the changelog, and ``load`` brings it back."""
        return key not in self._values and key in self.archive

    def _keep(self, key: str, value: V, partition: int, written_at: int | None = None,
              kept_at: int | None = None) -> None:
        """``written_at``: the record's time (where ``load`` looks for it); ``kept_at``: when the retention
        starts (a value read back stays its retention from then, not from when it was written)."""
        self._values[key] = value
        self._partition[key] = partition
        if self.archive.discard(key):  # it had left memory: its timer, if any, waits no more (timers are evicted keys)
            self.timers.discard(key)
        self._inactive.pop(key, None)
        self._resting.pop(key, None)
        bounded = self._retain_ms is not None or self._max_inactive is not None
        if bounded:
            now = int(self._clock() * 1000)
            written = now if written_at is None else written_at
            kept = (written if kept_at is None else kept_at, written)
        if self._active(value):
            self._open.setdefault(partition, {})[key] = None
            if bounded and self._due is not None:
                self._resting[key] = kept
        else:
            self._open.get(partition, {}).pop(key, None)
            if bounded:
                self._inactive[key] = kept
        if bounded:
            self._evict()

    def _evict(self) -> None:
        now = int(self._clock() * 1000)
        horizon = None if self._retain_ms is None else now - max(self._retain_ms, MIN_AGE_MS)
        for waiting in (self._inactive, self._resting):
            while waiting:
                key, (kept_at, written_at) = next(iter(waiting.items()))
                expired = horizon is not None and kept_at <= horizon
                over = (self._max_inactive is not None and len(waiting) > self._max_inactive
                        and kept_at <= now - MIN_AGE_MS)
                if not (expired or over):
                    break
                del waiting[key]
                partition = self._partition.pop(key)
                value = self._values.pop(key)
                if waiting is self._resting:  # open work leaving memory: its timer finds it on disk
                    self._open.get(partition, {}).pop(key, None)
                    when = self._due(value) if self._due is not None else None
                    if when is not None:
                        self.timers.put(key, partition, when)
                self.archive.put(key, partition, written_at)
                self.evicted += 1

    def _forget(self, key: str) -> None:
        self._values.pop(key, None)
        self._inactive.pop(key, None)
        self._resting.pop(key, None)
        if self.archive.discard(key):
            self.timers.discard(key)
        partition = self._partition.pop(key, None)
        if partition is not None:
            self._open.get(partition, {}).pop(key, None)

    async def load(self, key: str) -> V | None:
        """Read an evicted key's value back into memory from the changelog (None: it is not evicted, or
        the changelog no longer has it)."""
        row = self.archive.get(key)
        if row is None or key in self._values:
            return self._values.get(key)
        partition, written_at = row
        tp = (self.topic, partition)
        start = (await self._bus.offsets_at([tp], written_at - LOAD_BEFORE_MS))[tp]
        stop = (await self._bus.offsets_at([tp], written_at + LOAD_AFTER_MS))[tp]
        found: list[tuple[bytes, int]] = []

        def take(message: InMessage) -> None:
            if message.key is not None and message.key.decode() == key:
                found.append((message.value or b"", message.timestamp))

        if start is not None:
            await self._bus.read_range([(self.topic, partition, start, stop)], take)
        if key in self._values or self.archive.get(key) != row:
            return self._values.get(key)  # written again while reading
        if not found or not found[-1][0]:
            log.warning("state_not_found", store=self._name, key=key, partition=partition)
            self._forget(key)
            return None
        value: Any = orjson.loads(found[-1][0])
        if not self._valid(value):
            raise MessageError(f"{self._name} changelog: a value of an unexpected shape ({type(value).__name__})")
        self._keep(key, value, partition, written_at=found[-1][1], kept_at=int(self._clock() * 1000))
        self.loaded += 1
        return value  # type: ignore[no-any-return]

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
        """The active values of ``partition`` (a snapshot: the caller may put while iterating); a timer's
        walk is also when inactive values past their retention leave memory in a quiet spell."""
        if self._retain_ms is not None or self._max_inactive is not None:
            self._evict()
        for key in list(self._open.get(partition, ())):
            value = self._values.get(key)
            if value is not None:  # else it left memory meanwhile: ``due_keys`` finds it when its time comes
                yield key, value

    def due_keys(self, partition: int, now: int) -> list[str]:
        """Keys of ``partition`` whose values left memory and whose timer is due at ``now``: read each back
        (``load``) before walking ``in_partition``."""
        return self.timers.due(partition, now)

    def sizes(self) -> dict[str, int]:
        """Entries per structure (the memory diagnostic)."""
        return {"values": len(self._values), "inactive": len(self._inactive), "archive": len(self.archive),
                "open": sum(len(keys) for keys in self._open.values()), "resting": len(self._resting),
                "timers": len(self.timers)}

    def __len__(self) -> int:
        """Values in memory (evicted ones are in ``archive``)."""
        return len(self._values)

    def drop(self, partitions: set[int]) -> None:
        """Forget the keys of ``partitions`` (no longer ours)."""
        for key in [k for k, p in self._partition.items() if p in partitions]:
            self._forget(key)
        for partition in partitions:
            self._open.pop(partition, None)
        self.timers.drop(partitions)

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
                self._keep(key, value, message.partition, written_at=message.timestamp)
            else:
                self._forget(key)

        # A record that cannot be read back is reported and skipped: restoring again would meet it again,
        # and a service that cannot restore would be restarted on it forever.
        reader = guarded(load, reader=f"{self._name}-restore", letters=self._letters)
        count = await self._bus.read_to_end([(self.topic, p) for p in sorted(partitions)], reader)
        (log.info if count else log.debug)("state_restored", store=self._name, partitions=sorted(partitions),
                                           records=count, keys=len(self._values))  # nothing restored: debug
        return count
