"""The pending batch of one input partition of a transactional processor: pure bookkeeping, no Kafka.

A processor keeps one ``PendingBatch`` per input partition number. Fetched records are added to it
while that partition's previous transaction may still be committing; the partition's worker takes the
whole batch when it is due and handles and commits it in one transaction. A batch is due

- at once when its partition has not started a transaction for ``interval`` seconds (an isolated
  record after a quiet spell waits for nothing), or
- when ``interval`` has passed since the partition's last transaction started (under load: at most
  one transaction per partition and interval, the records in between accumulate), or
- as soon as it holds ``max_records`` records (it is then also *full*: its partitions are paused
  until the batch is taken, so a slow partition does not buffer without bound).

Partitions are independent of each other: nothing here waits for another partition's commit.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PendingBatch"]


@dataclass(slots=True, kw_only=True)
class PendingBatch:
    """Records of one partition number (one list per input topic partition, in arrival order)."""

    interval: float
    max_records: int
    #: ``time.monotonic()`` when the last batch was taken; None before the first.
    last_start: float | None = None
    _parts: dict[Hashable, list[Any]] = field(default_factory=dict)
    _count: int = 0

    def __len__(self) -> int:
        return self._count

    def add(self, tp: Hashable, records: Sequence[Any]) -> None:
        if records:
            self._parts.setdefault(tp, []).extend(records)
            self._count += len(records)

    @property
    def full(self) -> bool:
        return self._count >= self.max_records

    def delay(self, now: float) -> float:
        """Seconds until the batch is due (0: take it now); meaningless while it is empty."""
        if self.full or self.last_start is None:
            return 0.0
        return max(0.0, self.last_start + self.interval - now)

    def take(self, now: float) -> list[tuple[Any, list[Any]]]:
        """The whole batch, by input topic partition, leaving this one empty; starts a new interval."""
        parts = list(self._parts.items())
        self._parts = {}
        self._count = 0
        self.last_start = now
        return parts

    def drop(self) -> list[tuple[Any, int]]:
        """Forget the batch (the records are read again from Kafka); returns each input's first offset,
        where the consumer must seek back to."""
        first = [(tp, records[0].offset) for tp, records in self._parts.items()]
        self._parts = {}
        self._count = 0
        return first

    def inputs(self) -> list[Any]:
        return list(self._parts)
