"""Counters and histograms for operators, exposed in the Prometheus text format at ``/metrics``.

Kept dependency-free and tiny: labelled counters, a latency histogram, and gauges computed at scrape
time (consumer lag). One registry per process. ``ResponseSampler`` keeps the last hour minute by minute
(release responses and their end-to-end latency) for the console's operations page.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for n, v in zip(names, values, strict=True))
    return "{" + inner + "}"


class Counter:
    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *values: str, by: float = 1.0) -> None:
        with self._lock:
            self._values[values] = self._values.get(values, 0.0) + by

    def value(self, *values: str) -> float:
        return self._values.get(values, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.doc}"
        yield f"# TYPE {self.name} counter"
        for values, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.labels, values)} {value}"


class Histogram:
    def __init__(self, name: str, doc: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.doc, self.buckets = name, doc, buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.doc}"
        yield f"# TYPE {self.name} histogram"
        total = 0
        for bound, count in zip((*self.buckets, float("inf")), self._counts, strict=True):
            total += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            yield f'{self.name}_bucket{{le="{le}"}} {total}'
        yield f"{self.name}_sum {self._sum}"
        yield f"{self.name}_count {total}"


class Gauge:
    """Computed when scraped: ``collect`` returns (label values, value) pairs."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...],
                 collect: Callable[[], Iterable[tuple[tuple[str, ...], float]]]) -> None:
        self.name, self.doc, self.labels, self._collect = name, doc, labels, collect

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.doc}"
        yield f"# TYPE {self.name} gauge"
        for values, value in sorted(self._collect()):
            yield f"{self.name}{_labels(self.labels, values)} {value}"


SUBMISSIONS_ACCEPTED: Final = Counter("nsw_submissions_accepted_total", "Submissions accepted, by kind.", ("kind",))
SUBMISSIONS_REJECTED: Final = Counter("nsw_submissions_rejected_total", "Submissions refused, by problem type.",
                                      ("reason",))
ROUTED: Final = Counter("nsw_routed_total", "Agency requests sent, by agency.", ("agency",))
DECISIONS: Final = Counter("nsw_decisions_total", "Agency decisions received, by agency and outcome.",
                           ("agency", "outcome"))
RESPONSES: Final = Counter("nsw_release_responses_total", "Release responses issued, by outcome.", ("outcome",))
DEAD_LETTERS: Final = Counter("nsw_dead_letters_total", "Records sent to nsw.dlq, by service.", ("service",))
LATENCY: Final = Histogram("nsw_end_to_end_seconds", "From acceptance to release response.")
TAIL_BAD_RECORDS: Final = Counter("nsw_tail_bad_records_total",
                                  "Malformed records skipped by a topic reader (tail or changelog restore), by topic.",
                                  ("topic",))
TAIL_RESTARTS: Final = Counter("nsw_tail_restarts_total", "Topic readers restarted after failing or stalling.",
                               ("tail",))

TRANSACTIONS: Final = Counter("nsw_transactions_total", "Kafka transactions committed, by service.", ("service",))

_EXTRA: list[Gauge] = []


def register(gauge: Gauge) -> None:
    _EXTRA.append(gauge)


def exported() -> list[Counter | Histogram | Gauge]:
    """Every metric ``/metrics`` renders (the Grafana dashboard in ops/grafana is checked against them)."""
    return [SUBMISSIONS_ACCEPTED, SUBMISSIONS_REJECTED, ROUTED, DECISIONS, RESPONSES, DEAD_LETTERS, LATENCY,
            TAIL_BAD_RECORDS, TAIL_RESTARTS, TRANSACTIONS, *_EXTRA]


def render() -> str:
    return "\n".join(line for metric in exported() for line in metric.render()) + "\n"


# --- The last hour, minute by minute: what the console's operations page draws. ---------------------------

#: Latency buckets of the per-minute sampler grow by this factor (percentiles within about 2.5 %).
_SAMPLE_GROWTH: Final = 1.05
_LOG_GROWTH: Final = math.log(_SAMPLE_GROWTH)


def _bucket(ms: float) -> int:
    return int(math.log(max(ms, 1.0)) / _LOG_GROWTH)


def _bucket_ms(index: int) -> float:
    """The middle of a bucket (geometric), 1 ms for the first."""
    return 1.0 if index <= 0 else math.exp((index + 0.5) * _LOG_GROWTH)


def quantile(buckets: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of latencies counted in ``buckets`` (bucket index -> count), in ms."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return _bucket_ms(index)
    return _bucket_ms(max(buckets))  # pragma: no cover - the loop always reaches rank


@dataclass(frozen=True, slots=True)
class MinutePoint:
    """One minute of release responses: how many were issued, and the end-to-end latency of first answers."""

    start_ms: int
    responses: int
    answered: int  # first responses of a version, whose latency is measured
    p50_ms: float | None
    p95_ms: float | None


@dataclass(slots=True)
class _Slot:
    minute: int = -1
    responses: int = 0
    latency: dict[int, int] = field(default_factory=dict)
    #: The responses counted in this minute (a response's minute never changes: its issued_at is fixed).
    ids: set[str] = field(default_factory=set)


class ResponseSampler:
    """Release responses per minute and their end-to-end latency (issued at minus received at) for the last hour.

    A ring of one-minute slots, fed with every response the process learns (the status view's watcher, so
    an ingress-only process sees them too) and keyed by the response's own ``issued_at``: a response seen
    twice (a changelog record rewritten without a new response) counts once. Latency is measured on the
    first response of each declaration version; later versions wait for people (an officer's release).
    Latencies are kept as log-scale bucket counts, not values: memory stays bounded whatever the rate.
    """

    def __init__(self, *, minutes: int = 60, clock: Callable[[], float] = time.time) -> None:
        if minutes < 1:
            raise ValueError("a sampler keeps at least one minute")
        self.minutes = minutes
        self._clock = clock
        self._slots = [_Slot() for _ in range(minutes)]
        self._lock = threading.Lock()

    def _now_minute(self) -> int:
        return int(self._clock() * 1000) // 60_000

    def observe(self, response_id: str, *, issued_at: int, received_at: int, first: bool) -> bool:
        """Count one response (False when it was counted already or falls outside the kept hour)."""
        minute = issued_at // 60_000
        now = self._now_minute()
        if not now - self.minutes < minute <= now + 1:  # a minute ahead: clocks of two hosts
            return False
        with self._lock:
            slot = self._slots[minute % self.minutes]
            if slot.minute != minute:  # an hour old (or never used): the ring has come round
                slot.minute, slot.responses, slot.latency, slot.ids = minute, 0, {}, set()
            if response_id in slot.ids:
                return False
            slot.ids.add(response_id)
            slot.responses += 1
            if first:
                index = _bucket(max(0, issued_at - received_at))
                slot.latency[index] = slot.latency.get(index, 0) + 1
        return True

    def points(self) -> list[MinutePoint]:
        """The kept minutes, oldest first, one point per minute (zero when nothing was issued)."""
        now = self._now_minute()
        out = []
        with self._lock:
            for minute in range(now - self.minutes + 1, now + 1):
                slot = self._slots[minute % self.minutes]
                kept = slot.minute == minute
                latency = slot.latency if kept else {}
                out.append(MinutePoint(start_ms=minute * 60_000, responses=slot.responses if kept else 0,
                                       answered=sum(latency.values()), p50_ms=quantile(latency, 0.5),
                                       p95_ms=quantile(latency, 0.95)))
        return out

    def summary(self) -> MinutePoint:
        """The whole kept hour as one point (its start is the first kept minute)."""
        now = self._now_minute()
        merged: dict[int, int] = {}
        responses = 0
        with self._lock:
            for slot in self._slots:
                if now - self.minutes < slot.minute <= now:
                    responses += slot.responses
                    for index, count in slot.latency.items():
                        merged[index] = merged.get(index, 0) + count
        return MinutePoint(start_ms=(now - self.minutes + 1) * 60_000, responses=responses,
                           answered=sum(merged.values()), p50_ms=quantile(merged, 0.5), p95_ms=quantile(merged, 0.95))
