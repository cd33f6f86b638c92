"""Every structure that holds per-submission state stays bounded past its bound, and still answers (read-back
where the data must stay available): the notifier's deliveries, the compact indexes past their memory
bound (on disk), the feedback statistics' memory of what was counted; and the memory diagnostic and the
heap trim. No broker: ``MemoryBus`` and fake clocks."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from adapters._feedback import FeedbackStats
from adapters.customs._service import CustomsAdapter
from adapters.ipr._service import IPRAdapter
from broker._archive import RECENT_KEYS, CompactIndex, RecentKeys
from broker._envelope import InMessage, OutMessage, avro_message
from broker._memtrace import MallocTrim, MemoryTrace, growth, malloc_mib
from broker._metrics import ResponseSampler
from broker._state import MIN_AGE_MS, ChangelogStore
from broker._topics import RESPONSES, WEBHOOK_DELIVERIES
from broker._view import unplace
from broker._webhook_guard import UrlPolicy
from broker._webhook_secrets import SecretBox, load_webhook_key
from broker._webhooks import Delivery, DeliverySettings, Notifier, WebhookRegistry
from bus.memory import MemoryBus
from tests.conftest import poll
from tests.test_bounded_memory_unit import final_state, lodgement, state_record, view_at

NOW_S = 2_000_000_000.0


def _response(n: int) -> dict[str, Any]:
    sid = f"S{n:025d}"
    return {"response_id": f"{sid}:1:1", "submission_id": sid, "version": 1, "response_version": 1,
            "issued_at": 0, "received_at": 0, "trader_reference": f"LRN-{n}", "declarant_id": "GB1",
            "outcome": "RELEASE", "function_code": "08", "agencies": [], "items": [], "invalidated": False,
            "trader": "T"}


def _read(bus: MemoryBus, out: OutMessage) -> InMessage:
    bus.commit([(out, 0)])
    return bus.partitions_of(out.topic)[0][-1]


# --------------------------------------------------------------------------- the notifier's deliveries


@pytest.mark.asyncio
async def test_settled_deliveries_leave_memory_and_are_neither_delivered_again_nor_lost(tmp_path: Path) -> None:
    clock = [NOW_S]
    bus = MemoryBus(clock=lambda: int(clock[0] * 1000))
    registry = WebhookRegistry(MemoryBus(), SecretBox(load_webhook_key(tmp_path)))
    registry.learn({"trader": "T", "url": "http://127.0.0.1:9/hook", "secret": "s" * 32, "registered_at": 0})
    notifier = Notifier(bus=bus, registry=registry, policy=UrlPolicy(allow_private=True, allow_http=True),
                        settings=DeliverySettings(retain_seconds=60, max_settled=5), clock=lambda: clock[0])
    store = notifier.store
    responses = [_read(bus, avro_message(RESPONSES, "ReleaseResponse", _response(n))) for n in range(50)]
    for message in responses:
        for out in notifier.handle(message):
            _read(bus, out)
    assert len(store) == 50  # pending: open work stays
    for n in range(50):
        did = f"S{n:025d}:1:1"
        pending = store.get(did)
        assert pending is not None
        delivered: Delivery = {**pending, "status": "delivered", "attempts": 1, "delivered_at": 1}
        _read(bus, store.put(did, delivered, partition=0))
    assert len(store) == 50  # settled, but younger than the minimum age
    clock[0] += MIN_AGE_MS / 1000
    assert list(notifier.tick(0, int(clock[0] * 1000))) == []
    assert (len(store), store.evicted) == (5, 45)  # the count bound
    clock[0] += 61
    notifier.tick(0, int(clock[0] * 1000))
    assert (len(store), store.evicted) == (0, 50)  # the retention
    assert notifier.handle(responses[0]) == []  # an evicted delivery is known: not delivered twice
    assert len(notifier.handle(_read(bus, avro_message(RESPONSES, "ReleaseResponse", _response(99))))) == 1
    back = await store.load("S0000000000000000000000003:1:1")  # read back from the changelog
    assert back is not None
    assert (back["status"], back["delivered_at"]) == ("delivered", 1)
    assert store.get("S0000000000000000000000003:1:1") == back  # in memory again, for its retention
    assert len(bus.partitions_of(WEBHOOK_DELIVERIES)[0]) == 100  # nothing written by evicting or reading back


def test_without_bounds_the_notifier_keeps_every_delivery_as_before(tmp_path: Path) -> None:
    registry = WebhookRegistry(MemoryBus(), SecretBox(load_webhook_key(tmp_path)))
    registry.learn({"trader": "T", "url": "http://127.0.0.1:9/hook", "secret": "s" * 32, "registered_at": 0})
    bus = MemoryBus()
    notifier = Notifier(bus=bus, registry=registry, clock=lambda: NOW_S)
    for n in range(3):
        [out] = notifier.handle(_read(bus, avro_message(RESPONSES, "ReleaseResponse", _response(n))))
        pending: Delivery = orjson.loads(out.value or b"{}")
        notifier.store.put(pending["delivery_id"], {**pending, "status": "failed"}, partition=0)
    assert (len(notifier.store), notifier.store.evicted) == (3, 0)


# --------------------------------------------------------------------------- the memory diagnostic


def test_growth_names_the_site_that_grew() -> None:
    tracemalloc.start(2)
    try:
        base = tracemalloc.take_snapshot()
        kept = [bytearray(1000) for _ in range(500)]  # about 500 KB from one line
        now = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    [top] = growth(base, now, top=1, frames=1)
    assert top.where.startswith("tests/test_memory_bounds.py:")
    assert top.grew_kib >= 480
    assert top.grew_count >= 500
    assert len(kept) == 500


@pytest.mark.asyncio
async def test_the_trace_logs_growth_and_sizes_each_interval_and_stops_tracing() -> None:
    kept: list[bytearray] = []
    with structlog.testing.capture_logs() as logs:
        trace = MemoryTrace(0.05, top=3, frames=1, sizes=lambda: {"kept": len(kept)})
        trace.start()

        async def logged() -> None:
            while not any(e["event"] == "memory_growth" for e in logs):
                kept.append(bytearray(10_000))
                await asyncio.sleep(0.02)  # the interval passing, with allocations in it

        await asyncio.wait_for(logged(), timeout=10)
        await trace.stop()
    [event, *_] = [e for e in logs if e["event"] == "memory_growth"]
    assert event["sizes"]["kept"] > 0
    assert event["traced_mib"] >= 0
    assert event["malloc_mib"] is None or event["malloc_mib"]["held"] >= event["malloc_mib"]["in_use"] > 0
    assert any(site["where"].startswith("tests/test_memory_bounds.py:") for site in event["sites"])
    assert not tracemalloc.is_tracing()


@pytest.mark.asyncio
async def test_the_heap_is_trimmed_each_interval_until_stopped() -> None:
    trim = MallocTrim(0.01)
    if malloc_mib() is None:  # not glibc: nothing to trim, and nothing started
        trim.start()
        assert trim.trims == 0
        return
    trim.start()

    async def trimmed() -> int | None:
        return trim.trims if trim.trims >= 3 else None

    await poll(trimmed, timeout=10, what="three trims")
    await trim.stop()
    done = trim.trims
    await asyncio.sleep(0.05)  # three intervals more: none runs after stop
    assert trim.trims == done


# --------------------------------------------------------------------------- the feedback statistics


def test_feedback_remembers_at_most_its_bound_of_counted_keys_and_counts_each_once_within_it() -> None:
    stats = FeedbackStats(remember=100)
    for n in range(1000):
        stats.learn_selection("customs", ["R1", "R2"], 0, key=f"S{n}:1")
    assert 50 <= stats.sizes()["seen"] <= 100
    assert stats.counts("customs", "R1").selected == 1000
    stats.learn_selection("customs", ["R1"], 0, key="S999:1")  # within the memory: no news
    stats.learn_selection("customs", ["R2"], 0, key="S975:1")  # in the older generation: no news either
    assert stats.counts("customs", "R1").selected == 1000
    assert stats.counts("customs", "R2").selected == 1000
    stats.learn_selection("customs", ["R1"], 0, key="S0:1")  # long forgotten: counted again
    assert stats.counts("customs", "R1").selected == 1001


# --------------------------------------------------------------------------- the compact index on disk


def test_past_its_memory_bound_the_index_keeps_the_oldest_runs_on_disk_and_still_finds_every_key() -> None:
    index = CompactIndex(width=3, memory_keys=2 * RECENT_KEYS)
    keys = [f"S{n:07d}" for n in range(12 * RECENT_KEYS)]
    top = (1 << 64) - 1  # fields are unsigned 64-bit: the largest survives the trip to disk
    for n, key in enumerate(keys):
        index.put(key, n, top - n, 7)
    assert index.in_memory <= 2 * RECENT_KEYS
    assert index.spilled >= 9 * RECENT_KEYS
    assert all(index.get(key) == (n, top - n, 7) for n, key in enumerate(keys))
    gone = keys[5::97]
    for key in gone:
        index.discard(key)  # a deletion newer than the row on disk
    for n, key in enumerate(keys[3::101]):
        index.put(key, 10**12 + n, 0, 0)  # rewritten: the newer row wins over the one on disk
    for n in range(4 * RECENT_KEYS):  # more spills after the deletions and rewrites
        index.put(f"L{n}", n, 0, 0)
    assert index.in_memory <= 2 * RECENT_KEYS
    rewritten = dict(zip(keys[3::101], range(10**9), strict=False))
    for n, key in enumerate(keys):
        later = (10**12 + rewritten[key], 0, 0) if key in rewritten else None  # after the deletions
        expected = later or (None if key in gone else (n, top - n, 7))
        assert index.get(key) == expected, key
    assert index.get("never-put") is None
    index.close()
    assert index.get(f"L{4 * RECENT_KEYS - 1}") == (4 * RECENT_KEYS - 1, 0, 0)  # the newest are in memory


def test_the_store_and_the_view_keep_their_index_within_its_memory_bound() -> None:
    clock = [NOW_S]
    store: ChangelogStore[dict[str, str]] = ChangelogStore(
        bus=MemoryBus(), topic="t.state", name="unit", active=lambda value: value["status"] == "open",
        retain_seconds=0, clock=lambda: clock[0])
    store.archive.memory_keys = RECENT_KEYS
    for n in range(6 * RECENT_KEYS):
        store.put(f"K{n}", {"status": "done"}, partition=n % 3)
        clock[0] += 0.01
    clock[0] += MIN_AGE_MS / 1000
    store.put("last", {"status": "open"}, partition=0)
    assert store.archive.in_memory <= RECENT_KEYS
    assert store.needs_load("K0")
    assert store.archive.get("K0") == (0, int(NOW_S * 1000))
    assert store.archive.get("K7") == (1, int(NOW_S * 1000) + 70)
    view = view_at([NOW_S], max_final=0)
    view.archive.memory_keys = RECENT_KEYS
    for n in range(3 * RECENT_KEYS):
        sid = f"S{n}"
        view._apply(lodgement(sid, version=1, digest=f"{n:032x}"))
        view._apply(state_record(sid, final_state(sid), offset=n))
    assert (len(view), view.evicted, view.archive.in_memory <= RECENT_KEYS) == (0, 3 * RECENT_KEYS, True)
    row = view.archive.get("S0")
    assert row is not None
    assert unplace(row[0]) == (4, 0)  # where its state is: read back on demand
    view._apply(lodgement("S0", version=1, digest=f"{0:032x}"))  # lodged again: known from the row on disk
    assert (view.get("S0"), len(view)) == (None, 0)


def test_the_embedded_adapters_report_their_state_to_the_memory_diagnostic() -> None:
    """The hub's ``structure_sizes`` lists each adapter's state under its agency (broker/_hub.py)."""
    ipr = IPRAdapter(bootstrap="127.0.0.1:1")
    assert set(ipr.sizes()) >= {"values", "archive", "resting", "timers"}
    assert ipr.sizes()["values"] == 0
    customs = CustomsAdapter(bootstrap="127.0.0.1:1")
    assert set(customs.sizes()) == {"feedback.ids", "feedback.seen"}


def test_recent_keys_remember_the_latest_keys_within_their_bound() -> None:
    recent = RecentKeys(1000)
    assert not recent.seen("a")
    assert recent.seen("a")
    for n in range(10_000):
        recent.seen(f"key-{n}")
        assert len(recent) <= 1000
    assert recent.seen("key-9999")  # among the latest
    assert recent.seen("key-9500")  # the latest remember / 2 are always kept
    assert not recent.seen("a")  # 10,000 keys ago: forgotten, so new again


def test_the_response_sampler_holds_no_id_per_response_of_its_hour() -> None:
    """At 200/s an hour was 720,000 response ids in memory; now a bounded set of hashes, whatever the rate."""
    now_ms = int(NOW_S * 1000)
    sampler = ResponseSampler(remember=2000, clock=lambda: NOW_S)
    for n in range(50_000):
        assert sampler.observe(f"S{n:025d}:1:1", issued_at=now_ms - (n % 3_000_000), received_at=now_ms - 3_600_000,
                               first=True)  # fmt: skip
    assert len(sampler._recent) <= 2000
    assert sampler.summary().responses == 50_000
    assert not sampler.observe("S0000000000000000000049999:1:1", issued_at=now_ms - 49_999, received_at=0, first=True)
