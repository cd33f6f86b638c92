"""Counters and histograms for operators, exposed in the Prometheus text format at ``/metrics``.

Built on the standard client library (``prometheus_client``) with one dedicated registry per process (not the
library's global one): the hub's labelled counters and latency histogram, gauges computed at scrape time (consumer
lag, transactional producers: ``register``) as custom collectors, and the library's process and platform
collectors (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``python_info`` ...), so every
process, a ``--split`` child included, exposes its own on its admin port. Names, labels and meanings are those the
hub exported before the move; no ``_created`` series. ``ResponseSampler`` keeps the last hour minute by minute
(release responses and their end-to-end latency) for the console's operations page.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from broker._archive import RecentKeys
from bus import _metrics as bus_metrics

__all__ = ["LATENCY_BUCKETS", "REGISTRY", "Counter", "Gauge", "Histogram", "MinutePoint", "ResponseSampler",
           "exported", "quantile", "register", "render"]

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# The text stays as it was: a counter is its ``_total`` series, a histogram its buckets, sum and count.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

#: What ``/metrics`` renders: the hub's metrics and the standard process and platform collectors.
REGISTRY: Final = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)


class Counter:
    """A labelled counter; ``name`` is the exported name and ends in ``_total`` (the library adds it back)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"a counter's exported name ends in _total: {name}")
        self.name, self.doc, self.labels = name, doc, labels
        self._counter = prometheus_client.Counter(name, doc, labels, registry=REGISTRY)
        #: The series by label values, looked up once: the library's ``labels`` checks, locks and builds a key
        #: on every call, and the hot path counts several times per submission. Label values are few (agencies,
        #: outcomes, kinds, problem types), and series are never removed.
        self._series: dict[tuple[str, ...], Any] = {}

    def inc(self, *values: str, by: float = 1.0) -> None:
        if not self.labels:
            self._counter.inc(by)
            return
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = self._counter.labels(*values)
        series.inc(by)

    def value(self, *values: str) -> float:
        """The count for these label values (0 when never counted; reading creates no series)."""
        found = REGISTRY.get_sample_value(self.name, dict(zip(self.labels, values, strict=True)))
        return 0.0 if found is None else found


class Histogram:
    def __init__(self, name: str, doc: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.doc, self.buckets = name, doc, buckets
        self._histogram = prometheus_client.Histogram(name, doc, buckets=buckets, registry=REGISTRY)

    def observe(self, value: float) -> None:
        self._histogram.observe(value)


class Gauge:
    """Computed when scraped: ``collect`` returns (label values, value) pairs. A custom collector once registered."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...],
                 collect: Callable[[], Iterable[tuple[tuple[str, ...], float]]]) -> None:
        self.name, self.doc, self.labels, self._collect = name, doc, labels, collect

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.doc, labels=self.labels)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for values, value in sorted(self._collect()):
            family.add_metric(list(values), value)
        yield family


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
GC_PAUSE_SECONDS: Final = Counter("nsw_gc_pause_seconds_total",
                                  "Seconds the cyclic garbage collector held the process, by generation.",
                                  ("generation",))
GC_COLLECTIONS: Final = Counter("nsw_gc_collections_total", "Cyclic garbage collections, by generation.",
                                ("generation",))

TRANSACTIONS: Final = Counter("nsw_transactions_total", "Kafka transactions committed, by service.", ("service",))
# The Kafka layer counts its commits and dead letters; the exported counters are these.
bus_metrics.TRANSACTIONS.subscribe(TRANSACTIONS.inc)
bus_metrics.DEAD_LETTERS.subscribe(DEAD_LETTERS.inc)

_EXTRA: list[Gauge] = []


def register(gauge: Gauge) -> None:
    """Add a scrape-time gauge (a name already registered is a ValueError, as the library says)."""
    REGISTRY.register(gauge)
    _EXTRA.append(gauge)


def exported() -> list[Counter | Histogram | Gauge]:
    """Every hub metric ``/metrics`` renders (the Grafana dashboard in ops/grafana is checked against them);
    the standard ``process_*`` and ``python_*`` metrics come on top."""
    return [SUBMISSIONS_ACCEPTED, SUBMISSIONS_REJECTED, ROUTED, DECISIONS, RESPONSES, DEAD_LETTERS, LATENCY,
            TAIL_BAD_RECORDS, TAIL_RESTARTS, GC_PAUSE_SECONDS, GC_COLLECTIONS, TRANSACTIONS, *_EXTRA]


def render() -> str:
    """The registry in the Prometheus text format (version 0.0.4)."""
    return generate_latest(REGISTRY).decode()


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


class ResponseSampler:
    """Release responses per minute and their end-to-end latency (issued at minus received at) for the last hour.

    A ring of one-minute slots, fed with every response the process learns (the status view's watcher, so
    an ingress-only process sees them too) and keyed by the response's own ``issued_at``: a response seen
    twice (a changelog record rewritten without a new response, read soon after the first) counts once: the
    last ``remember`` response ids are kept as 64-bit hashes (``RecentKeys``), not the hour's ids, which at
    200/s were 720,000 strings. Latency is measured on the first response of each declaration version; later
    versions wait for people (an officer's release). Latencies are kept as log-scale bucket counts, not
    values: memory stays bounded whatever the rate.
    """

    def __init__(self, *, minutes: int = 60, remember: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        if minutes < 1:
            raise ValueError("a sampler keeps at least one minute")
        self.minutes = minutes
        self._clock = clock
        self._slots = [_Slot() for _ in range(minutes)]
        self._recent = RecentKeys(remember)
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
                slot.minute, slot.responses, slot.latency = minute, 0, {}
            if self._recent.seen(response_id):
                return False
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
