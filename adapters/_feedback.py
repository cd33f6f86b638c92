"""Feedback statistics: per agency and per profile or rule id, selections, inspections and hits (pure).

Keyed by ``(agency, id)``, where id is what selected an item: a customs risk profile id, ``RANDOM`` for random
selection, or a routing rule id. Counting units:

- a **selection** is one submission version in which the id selected at least one item (``learn_selection``
  with the version as ``key``: a repeat, or an officer's follow-up decision that keeps the engine's items, is
  not counted again);
- an **inspection** is one inspection result whose ``selected_by`` or ``rules`` name the id and that was
  performed; a **hit** is one with a finding (``learn_inspection``; a repeat of a ``result_id`` is not
  counted again). A result not performed counts nothing (the goods were never looked at).

``hit_rate`` is hits / inspections (None before the first inspection). ``series`` gives the counts per day or
per hour for charts. Memory is bounded: the last ``days`` days and ``hours`` hours of buckets per id (counted
back from the newest bucket seen), at most ``max_ids`` ids, and the last ``remember`` keys for repeats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from broker._archive import RecentKeys
from schemas import InspectionResult

__all__ = ["DAY_MS", "HOUR_MS", "Bucket", "Counts", "FeedbackStats", "SeriesPoint"]

Bucket = Literal["day", "hour"]
HOUR_MS: Final = 3600 * 1000
DAY_MS: Final = 24 * HOUR_MS
#: (bucket start, epoch ms; selected; inspected; hits)
SeriesPoint = tuple[int, int, int, int]


@dataclass(slots=True)
class Counts:
    """What one id did: selections, inspections performed, hits (findings)."""

    selected: int = 0
    inspected: int = 0
    hits: int = 0

    @property
    def hit_rate(self) -> float | None:
        return None if self.inspected == 0 else self.hits / self.inspected

    def add(self, *, selected: int = 0, inspected: int = 0, hits: int = 0) -> None:
        self.selected += selected
        self.inspected += inspected
        self.hits += hits


class _Series:
    """Counts per bucket start, the newest ``keep`` buckets."""

    __slots__ = ("buckets", "keep", "size")

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self.keep = keep
        self.buckets: dict[int, Counts] = {}

    def add(self, at_ms: int, *, selected: int = 0, inspected: int = 0, hits: int = 0) -> None:
        start = at_ms - at_ms % self.size
        newest = max(self.buckets, default=start)
        if start <= newest - self.keep * self.size:
            return  # older than what is kept: counted in the totals only
        counts = self.buckets.get(start)
        if counts is None:
            counts = self.buckets[start] = Counts()
            if start > newest:
                oldest_kept = start - (self.keep - 1) * self.size
                for old in [b for b in self.buckets if b < oldest_kept]:
                    del self.buckets[old]
        counts.add(selected=selected, inspected=inspected, hits=hits)

    def points(self) -> list[SeriesPoint]:
        return [(start, c.selected, c.inspected, c.hits) for start, c in sorted(self.buckets.items())]


@dataclass(slots=True)
class _Entry:
    totals: Counts
    days: _Series
    hours: _Series


class FeedbackStats:
    """Selections, inspections and hits per (agency, id), with day and hour series (see the module docstring)."""

    def __init__(self, *, days: int = 90, hours: int = 48, max_ids: int = 10_000, remember: int = 100_000) -> None:
        self._days = days
        self._hours = hours
        self._max_ids = max_ids
        self._entries: dict[tuple[str, str], _Entry] = {}
        #: What was counted already: the last ``remember`` keys, as 64-bit hashes.
        self._seen = RecentKeys(remember)
        self.ignored_ids = 0  # ids not kept because max_ids was reached

    def sizes(self) -> dict[str, int]:
        """Entries per structure (the memory diagnostic)."""
        return {"ids": len(self._entries), "seen": len(self._seen)}

    def _entry(self, agency: str, id_: str) -> _Entry | None:
        key = (agency, id_)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_ids:
                self.ignored_ids += 1
                return None
            entry = self._entries[key] = _Entry(Counts(), _Series(DAY_MS, self._days), _Series(HOUR_MS, self._hours))
        return entry

    def _repeat(self, key: str | None) -> bool:
        """Whether ``key`` was counted already (and remember it)."""
        return key is not None and self._seen.seen(key)

    def _add(self, agency: str, ids: Iterable[str], at_ms: int, **counts: int) -> None:
        for id_ in dict.fromkeys(ids):  # each id once, in order
            entry = self._entry(agency, id_)
            if entry is not None:
                entry.totals.add(**counts)
                entry.days.add(at_ms, **counts)
                entry.hours.add(at_ms, **counts)

    def learn_selection(self, agency: str, ids: Iterable[str], at_ms: int, *, key: str | None = None) -> None:
        """``ids`` selected items of ``agency`` at ``at_ms``; ``key`` (the submission version, say) counts each id
        once per key, so a repeated or follow-up decision that carries the same selections is no news."""
        fresh = [i for i in dict.fromkeys(ids)
                 if not self._repeat(None if key is None else f"s\x1f{agency}\x1f{key}\x1f{i}")]
        self._add(agency, fresh, at_ms, selected=1)

    def learn_inspection(self, result: InspectionResult) -> None:
        """One inspection result: an inspection (and maybe a hit) for every id in its selected_by and rules."""
        if self._repeat(f"i\x1f{result['agency']}\x1f{result['result_id']}") or not result["performed"]:
            return
        self._add(result["agency"], [*result["selected_by"], *result["rules"]], result["recorded_at"],
                  inspected=1, hits=int(result["finding"]))

    def counts(self, agency: str, id_: str) -> Counts:
        """The totals of one id (zeros when it never selected or was never inspected)."""
        entry = self._entries.get((agency, id_))
        return Counts() if entry is None else Counts(entry.totals.selected, entry.totals.inspected, entry.totals.hits)

    def hit_rate(self, agency: str, id_: str) -> float | None:
        return self.counts(agency, id_).hit_rate

    def ids(self, agency: str | None = None) -> list[tuple[str, str]]:
        """Every (agency, id) known, sorted; only ``agency``'s when given."""
        return sorted(k for k in self._entries if agency is None or k[0] == agency)

    def series(self, agency: str, id_: str, bucket: Bucket = "day") -> list[SeriesPoint]:
        """(bucket start ms, selected, inspected, hits) per day or hour, oldest first; only buckets with counts."""
        entry = self._entries.get((agency, id_))
        if entry is None:
            return []
        return (entry.days if bucket == "day" else entry.hours).points()
