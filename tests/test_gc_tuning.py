"""The garbage collector's settings and its pause counters (broker/_gc.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from broker._config import HubConfig
from broker._gc import GcPauses, tune
from broker._metrics import render


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Whatever a test sets, the test process gets Python's collector back as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def _series(name: str, generation: str) -> float:
    for line in render().splitlines():
        if line.startswith(f'{name}{{generation="{generation}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_full_collection_is_counted_with_its_pause() -> None:
    pauses = GcPauses()
    before = _series("nsw_gc_collections_total", "2"), _series("nsw_gc_pause_seconds_total", "2")
    pauses.install()
    try:
        gc.collect()
        gc.collect()
    finally:
        pauses.remove()
    after = _series("nsw_gc_collections_total", "2"), _series("nsw_gc_pause_seconds_total", "2")
    assert after[0] - before[0] == 2
    assert after[1] > before[1]
    gc.collect()  # removed: no longer counted
    assert _series("nsw_gc_collections_total", "2") == after[0]


def test_installing_twice_counts_a_collection_once() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()
    try:
        before = _series("nsw_gc_collections_total", "2")
        gc.collect()
        assert _series("nsw_gc_collections_total", "2") - before == 1
    finally:
        pauses.remove()
    assert pauses not in gc.callbacks


@pytest.mark.usefixtures("restored_gc")
def test_tune_sets_the_young_threshold_and_freezes_what_is_alive() -> None:
    _, middle, old = gc.get_threshold()
    kept = [{"start-up": n} for n in range(1000)]
    tuning = tune(threshold=12_345, freeze=True)
    assert gc.get_threshold() == (12_345, middle, old) == tuning.thresholds
    assert tuning.frozen == gc.get_freeze_count() >= len(kept)
    assert kept[0] not in gc.get_objects()  # frozen: no generation any collection walks holds it


@pytest.mark.usefixtures("restored_gc")
def test_zero_and_no_freeze_leave_python_as_it_is() -> None:
    before = gc.get_threshold()
    tuning = tune(threshold=0, freeze=False)
    assert gc.get_threshold() == before == tuning.thresholds
    assert tuning.frozen == 0 == gc.get_freeze_count()


def test_the_hub_tunes_the_collector_by_default_and_the_environment_can_undo_it() -> None:
    default = HubConfig.from_env({})
    assert (default.gc_threshold, default.gc_freeze) == (50_000, True)
    python = HubConfig.from_env({"NSW_GC_THRESHOLD": "0", "NSW_GC_FREEZE": "0"})
    assert (python.gc_threshold, python.gc_freeze) == (0, False)

