"""What the console's operations page shows, gathered off the request path and kept for a few seconds.

A page view never waits on Kafka: it reads the last reading and, when that is older than its time to live,
starts one refresh in the background (``Refreshed``), whose result the next view shows; only the very first
view waits a moment for a first reading. Nothing is read while nobody looks.

- **Consumer lag** per consumer group: ``ops._lag.consumer_lag`` (end offset minus committed offset, commit
  markers not counted), summed per group. When the cluster cannot be asked (a broker gone, a principal
  without the right to describe groups), the positions of this process's own consumers (the ``/metrics``
  gauge) are shown instead, and the page says so.
- **Dead letters** by service and reason (``nsw-service``, ``nsw-error-type``): the first reading starts a day
  back (offsets by time), each later one reads only what was written since (a tail of ``nsw.dlq``, never a
  full read); ``DeadLetterCounts`` keeps a day of them and counts the last hour and the last day.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import structlog

from broker._envelope import InMessage, header
from broker._topics import DLQ
from broker.errors import NSWError
from bus import consumer_lag as process_lag
from bus import existing_partition_counts, offset_bounds, offsets_at, read_range
from ops._lag import LagRow, consumer_lag
from ops.errors import OpsError
from schemas import AGENCIES

log = structlog.get_logger("nsw.ops")

__all__ = ["DeadLetterCounts", "DeadLetterReading", "GroupLag", "LagReading", "LetterSeen", "OpsMonitor", "Refreshed",
           "summarise_lag"]

T = TypeVar("T")

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
#: Seconds a reading is shown before the next view starts a new one.
REFRESH_SECONDS: Final = 5.0
#: Seconds the first view of the page waits for a first reading.
FIRST_WAIT_SECONDS: Final = 3.0
#: Dead letters kept for the day's counts; beyond this the oldest are forgotten (and the page says so).
MAX_LETTERS: Final = 100_000
LATEST: Final = 10


# --- consumer lag ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class GroupLag:
    """A consumer group's records waiting, in all, and where most of them wait."""

    group: str
    lag: int
    partitions: int
    worst_topic: str
    worst_partition: int
    worst_lag: int


def summarise_lag(rows: Sequence[LagRow]) -> list[GroupLag]:
    """Pure: per group, the lag summed over its partitions and its worst partition; most lag first."""
    groups: dict[str, list[LagRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    out = []
    for group, mine in groups.items():
        worst = max(mine, key=lambda r: (r.lag, r.topic, -r.partition))
        out.append(GroupLag(group=group, lag=sum(r.lag for r in mine), partitions=len(mine), worst_topic=worst.topic,
                            worst_partition=worst.partition, worst_lag=worst.lag))
    return sorted(out, key=lambda g: (-g.lag, g.group))


@dataclass(frozen=True, slots=True, kw_only=True)
class LagReading:
    at_ms: int
    groups: list[GroupLag]
    #: "committed offsets" (the cluster's view) or "this process" (its consumers' positions).
    source: str
    #: Why the cluster's view could not be read, when it could not.
    error: str | None = None


def _process_rows() -> list[LagRow]:
    return [LagRow(group=group, topic=topic, partition=int(partition), committed=None, end=0, lag=int(lag))
            for (group, topic, partition), lag in process_lag()]


async def read_lag(bootstrap: str, agencies: Sequence[str]) -> LagReading:
    try:
        rows = await consumer_lag(bootstrap, agencies=agencies)
    except (NSWError, OpsError) as exc:
        log.warning("ops_lag_unavailable", error=str(exc)[:300])
        return LagReading(at_ms=_now_ms(), groups=summarise_lag(_process_rows()), source="this process",
                          error=str(exc)[:300])
    return LagReading(at_ms=_now_ms(), groups=summarise_lag(rows), source="committed offsets")


# --- dead letters ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class LetterSeen:
    """What the page shows of a dead letter (never its value: declarations carry personal data)."""

    timestamp: int
    service: str
    reason: str
    source: str  # topic/partition@offset it came from, "" when unknown
    message: str  # the error message, shortened


class DeadLetterCounts:
    """Pure: the dead letters of the last day, counted by (service, reason) over the last hour and day."""

    def __init__(self, *, max_kept: int = MAX_LETTERS) -> None:
        self._kept: deque[LetterSeen] = deque()
        self._max = max_kept
        self.forgotten = 0  # letters dropped because more than ``max_kept`` came within a day

    def add(self, letter: LetterSeen) -> None:
        if len(self._kept) >= self._max:
            self._kept.popleft()
            self.forgotten += 1
        self._kept.append(letter)

    def add_message(self, message: InMessage) -> None:
        self.add(letter_seen(message))

    def prune(self, now_ms: int) -> None:
        while self._kept and self._kept[0].timestamp < now_ms - DAY_MS:
            self._kept.popleft()

    def counts(self, now_ms: int) -> list[tuple[str, str, int, int]]:
        """(service, reason, last hour, last day), most in the day first."""
        hour: Counter[tuple[str, str]] = Counter()
        day: Counter[tuple[str, str]] = Counter()
        for letter in self._kept:
            if letter.timestamp >= now_ms - DAY_MS:
                day[(letter.service, letter.reason)] += 1
                if letter.timestamp >= now_ms - HOUR_MS:
                    hour[(letter.service, letter.reason)] += 1
        return sorted(((s, r, hour[(s, r)], n) for (s, r), n in day.items()), key=lambda c: (-c[3], -c[2], c[0], c[1]))

    def latest(self, count: int = LATEST) -> list[LetterSeen]:
        """The most recent ``count`` letters, newest first."""
        return list(itertools.islice(reversed(self._kept), count))


def _text(value: bytes | None, default: str) -> str:
    return value.decode("utf-8", "replace") if value else default


def letter_seen(message: InMessage) -> LetterSeen:
    """Pure: a DLQ record's failure headers (written by ``bus.dead_letter``), whatever else it holds."""
    h = message.headers
    topic = _text(header(h, "nsw-source-topic"), "")
    source = f"{topic}/{_text(header(h, 'nsw-source-partition'), '?')}@{_text(header(h, 'nsw-source-offset'), '?')}" \
        if topic else ""
    return LetterSeen(timestamp=message.timestamp, service=_text(header(h, "nsw-service"), "unknown"),
                      reason=_text(header(h, "nsw-error-type"), "unknown")[:80], source=source,
                      message=_text(header(h, "nsw-error-message"), "")[:200])


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterReading:
    at_ms: int
    #: (service, reason, last hour, last day)
    counts: list[tuple[str, str, int, int]]
    latest: list[LetterSeen]
    forgotten: int = 0
    error: str | None = None


class DeadLetterTail:
    """Reads ``nsw.dlq`` forward: from a day back on the first refresh, then from where the last one ended."""

    def __init__(self, bootstrap: str, *, dlq: str = DLQ, clock: Callable[[], int] | None = None) -> None:
        self._bootstrap = bootstrap
        self._dlq = dlq
        self._clock = clock or _now_ms
        self._next: dict[int, int] = {}
        self.counts = DeadLetterCounts()

    async def _starts(self) -> dict[int, int]:
        partitions = (await existing_partition_counts(self._bootstrap, [self._dlq])).get(self._dlq, 0)
        tps = [(self._dlq, p) for p in range(partitions)]
        found = await offsets_at(self._bootstrap, tps, self._clock() - DAY_MS)
        bounds = await offset_bounds(self._bootstrap, tps)
        starts = {}
        for tp in tps:
            at = found[tp]
            starts[tp[1]] = bounds[tp][1] if at is None else at  # None: nothing written within the day
        return starts

    async def refresh(self) -> DeadLetterReading:
        try:
            if not self._next:
                self._next = await self._starts()
            bounds = await offset_bounds(self._bootstrap, [(self._dlq, p) for p in self._next])
            ranges = [(self._dlq, p, start, bounds[(self._dlq, p)][1]) for p, start in sorted(self._next.items())
                      if bounds[(self._dlq, p)][1] > start]
            if ranges:
                await read_range(self._bootstrap, ranges, self.counts.add_message, give_up_after=30.0)
                for _, p, _, end in ranges:
                    self._next[p] = end
        except NSWError as exc:
            log.warning("ops_dead_letters_unavailable", error=str(exc)[:300])
            return self._reading(error=str(exc)[:300])
        return self._reading()

    def _reading(self, *, error: str | None = None) -> DeadLetterReading:
        now = self._clock()
        self.counts.prune(now)
        return DeadLetterReading(at_ms=now, counts=self.counts.counts(now), latest=self.counts.latest(),
                                 forgotten=self.counts.forgotten, error=error)


# --- refreshing off the request path -----------------------------------------------------------------------

class Refreshed(Generic[T]):
    """The last value of ``fetch``, refreshed in the background once it is older than ``ttl`` seconds."""

    def __init__(self, fetch: Callable[[], Awaitable[T]], *, ttl: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._value: T | None = None
        self._at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def _run(self) -> None:
        try:
            self._value = await self._fetch()
        except Exception:  # a reading that fails is logged; the page keeps the last one
            log.exception("ops_refresh_failed")
        finally:
            self._at = self._clock()

    def _start(self) -> asyncio.Task[None] | None:
        if self._closed:
            return None
        if self._task is None or self._task.done():
            if self._clock() - self._at < self._ttl:
                return None
            self._task = asyncio.create_task(self._run(), name="ops-refresh")
        return self._task

    @property
    def value(self) -> T | None:
        """The last value read (None before any), without starting a reading."""
        return self._value

    @property
    def refreshing(self) -> bool:
        """Whether a reading is under way."""
        return self._task is not None and not self._task.done()

    async def get(self, *, first_wait: float = FIRST_WAIT_SECONDS) -> T | None:
        """The last value (None before any); starts a refresh when stale, waits for it only when there is none."""
        task = self._start()
        if self._value is None and task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), first_wait)
        return self._value

    async def close(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass(slots=True, kw_only=True)
class OpsMonitor:
    """The operations page's readings of the cluster (lag, dead letters), each kept for ``ttl`` seconds."""

    bootstrap: str
    agencies: Sequence[str] = AGENCIES
    ttl: float = REFRESH_SECONDS
    lag: Refreshed[LagReading] = field(init=False)
    dead_letters: Refreshed[DeadLetterReading] = field(init=False)
    _tail: DeadLetterTail = field(init=False)

    def __post_init__(self) -> None:
        self._tail = DeadLetterTail(self.bootstrap)
        self.lag = Refreshed(lambda: read_lag(self.bootstrap, self.agencies), ttl=self.ttl)
        self.dead_letters = Refreshed(self._tail.refresh, ttl=self.ttl)

    async def close(self) -> None:
        await self.lag.close()
        await self.dead_letters.close()


def _now_ms() -> int:
    return int(time.time() * 1000)
