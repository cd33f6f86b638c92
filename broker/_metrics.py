"""Counters and histograms for operators, exposed in the Prometheus text format at ``/metrics``.

Kept dependency-free and tiny: labelled counters, a latency histogram, and gauges computed at scrape
time (consumer lag). One registry per process.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable
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

_EXTRA: list[Gauge] = []


def register(gauge: Gauge) -> None:
    _EXTRA.append(gauge)


def render() -> str:
    metrics: list[Counter | Histogram | Gauge] = [
        SUBMISSIONS_ACCEPTED, SUBMISSIONS_REJECTED, ROUTED, DECISIONS, RESPONSES, DEAD_LETTERS, LATENCY,
        TAIL_BAD_RECORDS, TAIL_RESTARTS, *_EXTRA]
    return "\n".join(line for metric in metrics for line in metric.render()) + "\n"
