"""Python's cyclic garbage collector in a long-running hub: what it costs, and how it is set.

The hub allocates a great deal per submission (records, JSON states, XML trees) and keeps a large, long-lived
heap (modules, schemas, rule tables, reference data, the status view, open states). With Python's defaults a
young collection runs every 700 net allocations of container objects, every tenth of them also collects the
middle generation, and a full collection walks the whole heap whenever the objects promoted since the last
one reach a quarter of it. Most of that work finds nothing: the hub's garbage is freed by reference counting
as soon as a record is written; little of it is cyclic.

``tune`` sets what the hub runs with:

* ``threshold`` (``NSW_GC_THRESHOLD``): the young generation's threshold. Larger means fewer collections and
  fewer short-lived objects promoted into the older generations (where they are walked again), at the price of
  cyclic garbage living a little longer.
* ``freeze`` (``NSW_GC_FREEZE``): once the process has started, everything alive (imported modules, compiled
  schemas, the rule tables and reference data) is moved to a permanent generation that no collection walks
  again (``gc.freeze``). What is created afterwards is collected as before.

``GcPauses`` counts the time the collector stops the process, per generation, as
``nsw_gc_pause_seconds_total{generation}`` and ``nsw_gc_collections_total{generation}``, so an operator sees
the cost on ``/metrics`` and the benchmark can report it.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from broker._metrics import GC_COLLECTIONS, GC_PAUSE_SECONDS

__all__ = ["GcPauses", "GcTuning", "tune"]

log = structlog.get_logger("nsw.gc")


@dataclass(slots=True)
class GcPauses:
    """Times every collection (``gc.callbacks``) and counts it in ``nsw_gc_pause_seconds_total`` and
    ``nsw_gc_collections_total`` (broker/_metrics.py)."""

    _started: float = 0.0
    _installed: bool = field(default=False, init=False)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = str(info.get("generation", "?"))
        GC_PAUSE_SECONDS.inc(generation, by=time.perf_counter() - self._started)
        GC_COLLECTIONS.inc(generation)

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self)
            self._installed = True

    def remove(self) -> None:
        if self._installed:
            gc.callbacks.remove(self)
            self._installed = False


@dataclass(frozen=True, slots=True)
class GcTuning:
    """What ``tune`` did: the thresholds now in force and how many objects were frozen (0: none)."""

    thresholds: tuple[int, int, int]
    frozen: int


def tune(*, threshold: int, freeze: bool) -> GcTuning:
    """Set the young generation's ``threshold`` (0 leaves Python's) and, with ``freeze``, move everything alive
    now to the permanent generation. Call it once, when start-up has built what the process keeps."""
    if threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(threshold, middle, old)
    frozen = 0
    if freeze:
        gc.collect()  # start-up's own cyclic garbage goes first, so that nothing dead is frozen
        gc.freeze()
        frozen = gc.get_freeze_count()
    low, middle, old = gc.get_threshold()
    tuning = GcTuning((low, middle, old), frozen)
    log.info("gc_tuned", thresholds=list(tuning.thresholds), frozen=frozen)
    return tuning
