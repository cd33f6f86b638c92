"""The pending batch of one input partition (bus/_batching.py): when it is due, full, taken, dropped."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from broker._config import HubConfig
from broker.errors import ConfigError
from bus._batching import PendingBatch


@dataclass(frozen=True)
class Record:
    offset: int


def records(*offsets: int) -> list[Record]:
    return [Record(o) for o in offsets]


def test_a_record_after_a_quiet_spell_is_due_at_once() -> None:
    batch = PendingBatch(interval=0.05, max_records=10)
    batch.add("t-0", records(0))
    assert batch.delay(now=100.0) == 0.0
    batch.take(now=100.0)
    batch.add("t-0", records(1))
    assert batch.delay(now=200.0) == 0.0  # long after the last transaction started


def test_under_load_records_accumulate_for_the_interval() -> None:
    batch = PendingBatch(interval=0.05, max_records=10)
    batch.add("t-0", records(0))
    batch.take(now=10.0)
    batch.add("t-0", records(1, 2))
    assert abs(batch.delay(now=10.01) - 0.04) < 1e-9
    assert batch.delay(now=10.05) == 0.0
    assert batch.delay(now=10.2) == 0.0


def test_a_full_batch_is_due_before_its_interval_is_over() -> None:
    batch = PendingBatch(interval=10.0, max_records=3)
    batch.add("t-0", records(0))
    batch.take(now=1.0)
    batch.add("t-0", records(1, 2))
    assert not batch.full
    assert batch.delay(now=1.0) == 10.0
    batch.add("t-0", records(3))
    assert batch.full
    assert batch.delay(now=1.0) == 0.0


def test_take_returns_every_input_in_order_and_starts_empty() -> None:
    batch = PendingBatch(interval=0.05, max_records=100)
    batch.add("a-0", records(5, 6))
    batch.add("b-0", records(1))
    batch.add("a-0", records(7))
    batch.add("b-0", [])
    assert len(batch) == 4
    parts = batch.take(now=3.0)
    assert [(tp, [r.offset for r in rs]) for tp, rs in parts] == [("a-0", [5, 6, 7]), ("b-0", [1])]
    assert len(batch) == 0
    assert not batch
    assert batch.inputs() == []
    assert batch.last_start == 3.0


def test_drop_says_where_each_input_must_be_read_again() -> None:
    batch = PendingBatch(interval=0.05, max_records=100)
    batch.add("a-0", records(5, 6))
    batch.add("b-0", records(9))
    assert batch.drop() == [("a-0", 5), ("b-0", 9)]
    assert len(batch) == 0
    assert batch.drop() == []
    assert batch.last_start is None  # dropping is not a transaction


def test_a_zero_interval_never_waits() -> None:
    batch = PendingBatch(interval=0.0, max_records=100)
    batch.add("a-0", records(1))
    batch.take(now=5.0)
    batch.add("a-0", records(2))
    assert batch.delay(now=5.0) == 0.0


def test_commit_settings_are_read_once_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSW_COMMIT_INTERVAL_MS", "20")
    monkeypatch.setenv("NSW_COMMIT_MAX_RECORDS", "64")
    config = HubConfig.from_env()
    assert (config.commit_interval_ms, config.commit_max_records) == (20, 64)
    monkeypatch.setenv("NSW_COMMIT_MAX_RECORDS", "0")
    with pytest.raises(ConfigError, match="NSW_COMMIT_MAX_RECORDS"):
        HubConfig.from_env()
    monkeypatch.delenv("NSW_COMMIT_MAX_RECORDS")
    monkeypatch.setenv("NSW_COMMIT_INTERVAL_MS", "-1")
    with pytest.raises(ConfigError, match="NSW_COMMIT_INTERVAL_MS"):
        HubConfig.from_env()
