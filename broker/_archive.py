"""Where the hub finds what it let go of: a compact index of evicted keys, and a small cache of what was read back.

Final submissions leave the status view and the aggregator's memory after a retention (broker/_view.py,
broker/_state.py); their values stay in Kafka (compacted topics). To answer for one later, the hub must
know that it existed and where to read it. ``CompactIndex`` keeps that per key in a few machine words
(a 64-bit hash of the key and ``width`` 64-bit fields) in sorted ``array`` runs, without a Python object per
key: about ``8 * (width + 1)`` bytes a key, against kilobytes for the value itself. A hash collision (odds
about n²/2⁶⁵) only makes the caller read a record that turns out to be another key's, which it checks.

Past ``memory_keys`` entries (None: never) the oldest sorted run goes to disk: a private temporary SQLite
database (``sqlite3.connect("")``: in SQLite's temporary directory, ``SQLITE_TMPDIR`` or ``TMPDIR``, deleted
when the process ends) with a small page cache, so the memory of an index stays bounded however many
keys it has seen; a look-up that misses the runs in memory asks the database (one B-tree probe). The index
is rebuilt from Kafka at every start (restore, catching up), so nothing on disk needs to survive.

``TimerIndex`` is the same idea for open values that left memory while a timer still needs them (an IPR
suspension whose Art. 55 time-limit runs for ten working days): key, partition and due time on disk, so a
timer asks for the keys due now and reads only those back.

``LRU`` is the small cache of values read back on demand; ``RecentKeys`` remembers which of the latest keys
were seen, in a bounded number of 64-bit hashes. Pure: no network, no clock.
"""

from __future__ import annotations

import hashlib
import sqlite3
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from typing import Final, Generic, TypeVar

__all__ = ["LRU", "CompactIndex", "RecentKeys", "TimerIndex", "key_hash"]

K = TypeVar("K")
V = TypeVar("V")

#: Keys gathered in a dict before they are sorted into a run.
RECENT_KEYS: Final = 4096
#: Pages (KiB, negative: SQLite's unit) of the on-disk part's cache.
DISK_CACHE_KIB: Final = 1024
_SIGN: Final = 1 << 63
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

    def __init__(self, width: int, *, memory_keys: int | None = None) -> None:
        self.width = width
        #: Entries kept in memory at most (the oldest runs go to disk beyond); None: all in memory.
        self.memory_keys = memory_keys
        self._recent: dict[int, tuple[int, ...]] = {}
        self._runs: list[_Run] = []  # oldest (largest) first
        self._disk: sqlite3.Connection | None = None
        #: Rows written to disk (an upper bound of the keys there: rewritten and deleted ones count too).
        self.spilled = 0

    def __len__(self) -> int:
        """Entries held, counting superseded and deleted ones not merged away yet (an upper bound)."""
        return self.in_memory + self.spilled

    @property
    def in_memory(self) -> int:
        return len(self._recent) + sum(len(run) for run in self._runs)

    def put(self, key: str, *fields: int) -> None:
        if len(fields) != self.width:
            raise ValueError(f"an entry of this index has {self.width} fields, not {len(fields)}")
        self._add(key_hash(key), tuple(fields))

    def discard(self, key: str) -> bool:
        """Forget ``key``; whether it was there."""
        if self.get(key) is None:
            return False
        self._add(key_hash(key), _GONE)
        return True

    def get(self, key: str) -> tuple[int, ...] | None:
        hashed = key_hash(key)
        row = self._recent.get(hashed)
        if row is None:
            for run in reversed(self._runs):
                row = run.find(hashed)
                if row is not None:
                    break
        if row is None and self._disk is not None:
            found = self._disk.execute("SELECT * FROM keys WHERE h = ?", (hashed - _SIGN,)).fetchone()
            row = None if found is None else tuple(v + _SIGN for v in found[1:])
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
            self._runs.append(self._merge(older, newer, last=not self._runs and self._disk is None))
        while self.memory_keys is not None and self._runs and self.in_memory > self.memory_keys:
            self._spill(self._runs.pop(0))

    def _spill(self, run: _Run) -> None:
        """The oldest run to disk (older than every run left in memory, so those still win)."""
        if self._disk is None:
            self._disk = _temporary_database()  # private, temporary, on disk: deleted when closed
            columns = "".join(f", f{n} INTEGER" for n in range(self.width))
            self._disk.execute(f"CREATE TABLE keys (h INTEGER PRIMARY KEY{columns})")
        kept = [(hashed - _SIGN, *(v - _SIGN for v in row)) for hashed, row in run.rows() if row]
        gone = [(hashed - _SIGN,) for hashed, row in run.rows() if not row]
        with self._disk:
            marks = ", ".join("?" * (self.width + 1))
            self._disk.executemany(f"INSERT OR REPLACE INTO keys VALUES ({marks})", kept)  # noqa: S608 - our columns
            self._disk.executemany("DELETE FROM keys WHERE h = ?", gone)
        self.spilled += len(kept)

    def close(self) -> None:
        """Let the on-disk part go (its file is deleted)."""
        if self._disk is not None:
            self._disk.close()
            self._disk = None

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


def _temporary_database() -> sqlite3.Connection:
    """A private temporary SQLite database on disk (deleted when closed), with a small page cache."""
    disk = sqlite3.connect("")
    disk.execute(f"PRAGMA cache_size = -{DISK_CACHE_KIB}")
    disk.execute("PRAGMA journal_mode = OFF")
    disk.execute("PRAGMA synchronous = OFF")
    return disk


class TimerIndex:
    """Key -> (partition, due time in epoch ms) of values that left memory while a timer still needs them.

    On disk from the first entry (a private temporary SQLite database, as ``CompactIndex``'s spilled part):
    memory stays the same however many values wait, for however long. ``due`` gives a partition's keys whose
    time has come, the earliest first.
    """

    def __init__(self) -> None:
        self._disk: sqlite3.Connection | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _db(self) -> sqlite3.Connection:
        if self._disk is None:
            self._disk = _temporary_database()
            self._disk.execute("CREATE TABLE timers (k TEXT PRIMARY KEY, p INTEGER NOT NULL, due INTEGER NOT NULL)")
            self._disk.execute("CREATE INDEX by_due ON timers (p, due)")
        return self._disk

    def put(self, key: str, partition: int, due: int) -> None:
        db = self._db()
        with db:
            replaced = db.execute("DELETE FROM timers WHERE k = ?", (key,)).rowcount
            db.execute("INSERT INTO timers VALUES (?, ?, ?)", (key, partition, due))
        self._count += 1 - replaced

    def discard(self, key: str) -> None:
        if self._count and self._disk is not None:
            with self._disk:
                self._count -= self._disk.execute("DELETE FROM timers WHERE k = ?", (key,)).rowcount

    def due(self, partition: int, now: int, *, limit: int = 500) -> list[str]:
        """Keys of ``partition`` due at ``now`` or before, earliest first, at most ``limit``."""
        if not self._count or self._disk is None:
            return []
        rows = self._disk.execute("SELECT k FROM timers WHERE p = ? AND due <= ? ORDER BY due LIMIT ?",
                                  (partition, now, limit)).fetchall()
        return [key for (key,) in rows]

    def drop(self, partitions: set[int]) -> None:
        """Forget the keys of ``partitions``."""
        if self._count and self._disk is not None and partitions:
            marks = ", ".join("?" * len(partitions))
            with self._disk:
                self._count -= self._disk.execute(f"DELETE FROM timers WHERE p IN ({marks})",  # noqa: S608
                                                  sorted(partitions)).rowcount

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
            self._count = 0


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


class RecentKeys:
    """Whether a key was seen among the last ``remember`` to ``remember / 2`` distinct keys (``seen``).

    Two generations of 64-bit hashes (a few words a key, not the strings), each at most ``remember / 2``: when
    the newer is full it becomes the older and the older goes. Memory is bounded by ``remember`` at any rate;
    a key seen again after that many others counts as new. For repeats that follow their first sighting
    closely (a record read twice, a state rewritten without news), which is where they come from.
    """

    def __init__(self, remember: int) -> None:
        self.remember = max(remember, 2)
        self._newer: set[int] = set()
        self._older: set[int] = set()

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)

    def seen(self, key: str) -> bool:
        """Whether ``key`` was seen already; it is remembered from now on either way."""
        hashed = key_hash(key)
        if hashed in self._newer or hashed in self._older:
            return True
        if len(self._newer) >= self.remember // 2:
            self._older, self._newer = self._newer, set()
        self._newer.add(hashed)
        return False
