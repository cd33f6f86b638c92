"""Where the hub finds what it let go of: a compact index of evicted keys, and a small cache of what was read back.

Final submissions leave the status view and the aggregator's memory after a retention (broker/_view.py,
broker/_state.py); their values stay in Kafka (compacted topics). To answer for one later, the hub must
know that it existed and where to read it. ``CompactIndex`` keeps that per key in a few machine words
(a 64-bit hash of the key and ``width`` 64-bit fields) in sorted ``array`` runs, without a Python object per
key: about ``8 * (width + 1)`` bytes a key, against kilobytes for the value itself. A hash collision (odds
about n²/2⁶⁵) only makes the caller read a record that turns out to be another key's, which it checks.

``LRU`` is the small cache of values read back on demand. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from typing import Final, Generic, TypeVar

__all__ = ["LRU", "CompactIndex", "key_hash"]

K = TypeVar("K")
V = TypeVar("V")

#: Keys gathered in a dict before they are sorted into a run.
RECENT_KEYS: Final = 4096
_GONE: Final[tuple[int, ...]] = ()


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class _Run:
    """One sorted run: hashes ascending, and the fields of each (an empty row is a deletion)."""

    __slots__ = ("fields", "gone", "hashes")

    def __init__(self, width: int) -> None:
        self.hashes = array("Q")
        self.fields = [array("Q") for _ in range(width)]
        self.gone = bytearray()

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, hashed: int) -> tuple[int, ...] | None:
        at = bisect_left(self.hashes, hashed)
        if at == len(self.hashes) or self.hashes[at] != hashed:
            return None
        return _GONE if self.gone[at] else tuple(column[at] for column in self.fields)

    def append(self, hashed: int, row: tuple[int, ...]) -> None:
        self.hashes.append(hashed)
        self.gone.append(0 if row else 1)
        for column, value in zip(self.fields, row or (0,) * len(self.fields), strict=True):
            column.append(value)

    def rows(self) -> Iterator[tuple[int, tuple[int, ...]]]:
        for at, hashed in enumerate(self.hashes):
            yield hashed, (_GONE if self.gone[at] else tuple(column[at] for column in self.fields))


class CompactIndex:
    """Key -> ``width`` unsigned 64-bit fields, in about ``8 * (width + 1)`` bytes a key.

    Newest entries are in a small dict; every ``RECENT_KEYS`` they are sorted into a run, and runs of
    similar size are merged (a log-structured merge), so adding costs O(log n) amortised and a look-up a
    bisection per run (a handful).
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self._recent: dict[int, tuple[int, ...]] = {}
        self._runs: list[_Run] = []  # oldest (largest) first

    def __len__(self) -> int:
        """Entries held, counting superseded and deleted ones not merged away yet (an upper bound)."""
        return len(self._recent) + sum(len(run) for run in self._runs)

    def put(self, key: str, *fields: int) -> None:
        if len(fields) != self.width:
            raise ValueError(f"an entry of this index has {self.width} fields, not {len(fields)}")
        self._add(key_hash(key), tuple(fields))

    def discard(self, key: str) -> None:
        if self.get(key) is not None:
            self._add(key_hash(key), _GONE)

    def get(self, key: str) -> tuple[int, ...] | None:
        hashed = key_hash(key)
        row = self._recent.get(hashed)
        if row is None:
            for run in reversed(self._runs):
                row = run.find(hashed)
                if row is not None:
                    break
        return row or None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def _add(self, hashed: int, row: tuple[int, ...]) -> None:
        self._recent[hashed] = row
        if len(self._recent) >= RECENT_KEYS:
            self._flush()

    def _flush(self) -> None:
        run = _Run(self.width)
        for hashed in sorted(self._recent):
            run.append(hashed, self._recent[hashed])
        self._recent = {}
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            newer = self._runs.pop()
            older = self._runs.pop()
            self._runs.append(self._merge(older, newer, last=not self._runs))

    def _merge(self, older: _Run, newer: _Run, *, last: bool) -> _Run:
        """One run of both; the newer row of a key wins; deletions are dropped once nothing older is left."""
        merged = _Run(self.width)
        old, new = older.rows(), newer.rows()
        a, b = next(old, None), next(new, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                pick, a = a, next(old, None)
            elif a is None or b[0] < a[0]:
                pick, b = b, next(new, None)
            else:  # the same key in both: the newer wins
                pick, a, b = b, next(old, None), next(new, None)
            assert pick is not None
            if pick[1] or not last:
                merged.append(*pick)
        return merged


class LRU(Generic[K, V]):
    """At most ``size`` values, the least recently used one leaving first."""

    def __init__(self, size: int) -> None:
        self.size = max(size, 0)
        self._values: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: K) -> V | None:
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.size == 0:
            return
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._values.pop(key, None)
