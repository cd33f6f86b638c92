"""Bounded memory without a broker: the compact index of evicted keys, the small cache, the status view and the
changelog store letting final work go (and knowing what they let go of), the digest prefixes an evicted
submission keeps for answering a lodgement again."""

from __future__ import annotations

import random

import orjson
import pytest

from broker._aggregate import AggregateState, new_state
from broker._archive import LRU, RECENT_KEYS, CompactIndex
from broker._envelope import InMessage
from broker._idempotency import KEEP_MS, IdempotencyStore, Stored
from broker._lodgement import Known, decide_lodgement, same_digest
from broker._state import MIN_AGE_MS, ChangelogStore
from broker._topics import AGGREGATE_STATE, SUBMISSIONS
from broker._view import StatusView, archive_row, archived_entry, archived_known, place, unplace
from bus.memory import MemoryBus

NOW_S = 2_000_000_000.0
NOW_MS = int(NOW_S * 1000)


# --------------------------------------------------------------------------- the index and the cache


def test_the_index_finds_every_key_through_flushes_and_merges_and_the_newest_row_wins() -> None:
    index = CompactIndex(width=2)
    keys = [f"S{n:06d}" for n in range(3 * RECENT_KEYS + 17)]  # several runs, merged
    for n, key in enumerate(keys):
        index.put(key, n, 2 * n)
    assert all(index.get(key) == (n, 2 * n) for n, key in enumerate(keys))
    for n, key in enumerate(keys[::7]):
        index.put(key, 10**12 + n, 1)  # rewritten later: the new row wins over the one in an older run
    assert all(index.get(key) == (10**12 + n, 1) for n, key in enumerate(keys[::7]))
    assert index.get("never-put") is None
    assert "S000001" in index
    assert "never-put" not in index


def test_a_discarded_key_stays_gone_after_merges_and_can_come_back() -> None:
    index = CompactIndex(width=1)
    rng = random.Random(7)
    keys = [f"K{n}" for n in range(2 * RECENT_KEYS)]
    for key in keys:
        index.put(key, 1)
    gone = set(rng.sample(keys, 500))
    for key in gone:
        index.discard(key)
    for n in range(3 * RECENT_KEYS):  # more flushes and merges after the deletions
        index.put(f"L{n}", 2)
    assert all((index.get(key) is None) == (key in gone) for key in keys)
    back = sorted(gone)[0]
    index.put(back, 3)
    assert index.get(back) == (3,)


def test_the_index_costs_a_few_words_a_key() -> None:
    index = CompactIndex(width=3)
    for n in range(8 * RECENT_KEYS):
        index.put(f"S{n}", n, n, n)
    runs = index._runs
    stored = sum(r.hashes.itemsize * len(r.hashes) + sum(c.itemsize * len(c) for c in r.fields) + len(r.gone)
                 for r in runs)
    assert stored <= 33 * len(index)  # 4 words and a byte a key in the sorted runs
    with pytest.raises(ValueError, match="3 fields"):
        index.put("x", 1)


def test_the_cache_lets_the_least_recently_used_go() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), len(cache)) == (None, 1, 3, 2)
    assert cache.pop("a") == 1
    assert cache.get("a") is None
    empty: LRU[str, int] = LRU(0)
    empty.put("a", 1)
    assert empty.get("a") is None


# --------------------------------------------------------------------------- digests kept as prefixes


def test_an_evicted_submission_answers_a_lodgement_again_from_its_digest_prefixes() -> None:
    first, latest = "0123456789abcdef" * 2, "fedcba9876543210" * 2
    entry_known = Known(2, {1: first, 2: latest}, cancelled=False)
    view = StatusView("unused:9092")
    view.accepted("S", version=1, received_at=1, digest=first, kind="DECLARATION", trader="t")
    entry = view.get("S")
    assert entry is not None
    entry.known = entry_known
    entry.state_at = place(3, 12345)
    known = archived_known(archive_row(entry))
    assert (known.version, known.cancelled) == (2, False)
    assert decide_lodgement(known, "DECLARATION", first).action == "duplicate"
    assert decide_lodgement(known, "DECLARATION", latest).action == "conflict"
    assert decide_lodgement(known, "AMENDMENT", latest).action == "duplicate"
    assert decide_lodgement(known, "AMENDMENT", first) == decide_lodgement(entry_known, "AMENDMENT", first)
    assert unplace(archive_row(entry)[0]) == (3, 12345)


def test_a_prefix_matches_only_the_start_of_a_longer_digest_and_empty_matches_only_empty() -> None:
    assert same_digest("abc", "abcdef")
    assert not same_digest("abd", "abcdef")
    assert not same_digest("", "abcdef")
    assert same_digest("", "")
    assert not same_digest(None, "abc")
    assert not same_digest("abcdef", "abc")


# --------------------------------------------------------------------------- the status view


def final_state(sid: str, *, version: int = 1, trader: str = "acme") -> AggregateState:
    state = new_state(sid)
    state["version"] = version
    state["status"] = "released"
    state["plan"] = {"submission_id": sid, "version": version, "routed_at": NOW_MS - 10, "received_at": NOW_MS - 20,
                     "trader_reference": "R", "declarant_id": "D", "item_sequences": [1], "agencies": [],
                     "trader": trader}
    return state


def state_record(sid: str, state: AggregateState, *, offset: int, at: int = NOW_MS) -> InMessage:
    return InMessage(topic=AGGREGATE_STATE, partition=4, offset=offset, timestamp=at, key=sid.encode(),
                     value=orjson.dumps(state), headers=())


def lodgement(sid: str, *, version: int, digest: str, kind: str = "DECLARATION", at: int = NOW_MS) -> InMessage:
    return InMessage(topic=SUBMISSIONS, partition=4, offset=0, timestamp=at, key=sid.encode(), value=b"",
                     headers=(("nsw-version", str(version).encode()), ("nsw-trader", b"acme"),
                              ("nsw-content-digest", digest.encode()), ("nsw-kind", kind.encode())))


def view_at(clock: list[float], **kw: int) -> StatusView:
    return StatusView("unused:9092", retain_seconds=kw.get("retain", 60), max_final=kw.get("max_final", 100),
                      cache_size=kw.get("cache", 10), clock=lambda: clock[0])


def test_final_submissions_leave_memory_after_the_retention_open_ones_stay() -> None:
    clock = [NOW_S]
    view = view_at(clock)
    view._apply(lodgement("OPEN", version=1, digest="a" * 32))
    view._apply(lodgement("DONE", version=1, digest="b" * 32))
    view._apply(state_record("DONE", final_state("DONE"), offset=7))
    assert len(view) == 2
    clock[0] += 61  # past the retention: the next record read lets DONE go
    view._apply(lodgement("NEW", version=1, digest="c" * 32))
    assert (view.get("DONE"), view.evicted, len(view)) == (None, 1, 2)
    assert view.get("OPEN") is not None
    assert view.archive.get("DONE") is not None
    assert unplace(view.archive.get("DONE")[0]) == (4, 7)  # type: ignore[index]
    assert view.by_trader.count("acme") == 2  # the trader index follows the view's memory


def test_beyond_the_count_bound_the_oldest_final_ones_go_at_once() -> None:
    clock = [NOW_S]
    view = view_at(clock, max_final=3)
    for n in range(10):
        sid = f"S{n}"
        view._apply(lodgement(sid, version=1, digest=f"{n:032x}"))
        view._apply(state_record(sid, final_state(sid), offset=n, at=NOW_MS + n))
    assert (len(view), view.evicted) == (3, 7)
    assert [sid for sid in ("S0", "S6", "S7", "S9") if view.get(sid) is not None] == ["S7", "S9"]


def test_a_new_version_of_an_evicted_submission_brings_it_back_with_its_lodgements() -> None:
    clock = [NOW_S]
    view = view_at(clock, max_final=0)
    view._apply(lodgement("S", version=1, digest="a" * 32))
    view._apply(state_record("S", final_state("S"), offset=1))
    assert view.get("S") is None
    view._apply(lodgement("S", version=1, digest="a" * 32))  # read again (another instance catching up): no news
    assert view.get("S") is None
    view._apply(lodgement("S", version=2, digest="b" * 32, kind="AMENDMENT"))
    entry = view.get("S")
    assert entry is not None
    assert (entry.status, entry.known.version, entry.trader) == ("accepted", 2, "acme")
    assert decide_lodgement(entry.known, "DECLARATION", "a" * 32).action == "duplicate"
    assert view.archive.get("S") is None
    view._apply(state_record("S", final_state("S", version=2), offset=2))  # final again, and gone again
    assert view.get("S") is None
    assert archived_known(view.archive.get("S")).version == 2  # type: ignore[arg-type]


def test_a_state_read_while_catching_up_before_its_lodgement_keeps_the_digest_in_the_row() -> None:
    """After a restart the state topic may be read before the submissions topic: an entry already evicted
    learns its digest without coming back into memory (it has no news)."""
    clock = [NOW_S]
    view = view_at(clock, max_final=0)
    view._apply(state_record("S", final_state("S"), offset=1, at=NOW_MS - 3_600_000))
    assert view.get("S") is None
    view._apply(lodgement("S", version=1, digest="d" * 32, at=NOW_MS - 3_600_000))
    assert (view.get("S"), len(view)) == (None, 0)
    known = archived_known(view.archive.get("S"))  # type: ignore[arg-type]
    assert decide_lodgement(known, "DECLARATION", "d" * 32).action == "duplicate"


def test_an_evicted_submission_read_back_renders_as_before() -> None:
    clock = [NOW_S]
    view = view_at(clock, max_final=0)
    view._apply(lodgement("S", version=1, digest="a" * 32))
    view._apply(state_record("S", final_state("S"), offset=9))
    row = view.archive.get("S")
    assert row is not None
    entry = archived_entry("S", row, final_state("S"))
    assert (entry.status, entry.trader, entry.declarant, entry.received_at) == ("released", "acme", "D", NOW_MS - 20)
    assert unplace(entry.state_at) == (4, 9)


# --------------------------------------------------------------------------- the changelog store


def store_at(clock: list[float], *, retain: float | None = 60.0, max_inactive: int | None = None
             ) -> ChangelogStore[dict[str, str]]:
    return ChangelogStore(bus=MemoryBus(), topic="t.state", name="unit",
                          active=lambda value: value["status"] == "open", retain_seconds=retain,
                          max_inactive=max_inactive, clock=lambda: clock[0])


def test_the_store_keeps_open_values_and_lets_final_ones_go_after_the_retention() -> None:
    clock = [NOW_S]
    s = store_at(clock)
    s.put("open", {"status": "open"}, partition=0)
    s.put("done", {"status": "done"}, partition=1)
    assert (s.get("done"), s.needs_load("done")) == ({"status": "done"}, False)
    clock[0] += 61
    s.put("other", {"status": "open"}, partition=0)
    assert (s.get("done"), s.needs_load("done"), len(s), s.evicted) == (None, True, 2, 1)
    assert s.archive.get("done") == (1, NOW_MS)
    assert s.get("open") == {"status": "open"}
    assert not s.needs_load("never")
    s.put("done", {"status": "open"}, partition=1)  # written again (its value came back): no longer evicted
    assert not s.needs_load("done")
    s.delete("open", partition=0)
    assert not s.needs_load("open")


def test_the_count_bound_never_evicts_a_value_younger_than_the_minimum_age() -> None:
    clock = [NOW_S]
    s = store_at(clock, retain=None, max_inactive=2)
    for n in range(5):
        s.put(f"k{n}", {"status": "done"}, partition=0)
    assert (len(s), s.evicted) == (5, 0)  # its transaction may not have committed yet
    clock[0] += MIN_AGE_MS / 1000
    s.put("k5", {"status": "done"}, partition=0)
    assert (len(s), s.evicted) == (2, 4)
    assert [k for k in ("k0", "k3", "k4", "k5") if s.needs_load(k)] == ["k0", "k3"]


def test_without_a_retention_the_store_keeps_everything_as_before() -> None:
    clock = [NOW_S]
    s = store_at(clock, retain=None)
    s.put("done", {"status": "done"}, partition=0)
    clock[0] += 10**6
    s.put("x", {"status": "done"}, partition=0)
    assert (len(s), s.evicted, s.needs_load("done")) == (2, 0, False)


# --------------------------------------------------------------------------- idempotency keys


def test_idempotency_answers_expire_after_a_day_and_the_oldest_go_beyond_the_bound() -> None:
    store = IdempotencyStore(max_keys=3)
    now = NOW_MS
    for n in range(5):
        store._keep(("t", f"k{n}"), Stored("f", 202, b"{}", now - KEEP_MS + 1000 * n), now=now)
    assert len(store) == 3  # k0 and k1 went: beyond the bound
    verdicts = [store.check("t", f"k{n}", "f", now=now)[0] for n in range(5)]
    assert verdicts == ["new", "new", "replay", "replay", "replay"]
    later = now + 2500  # k2 is past its 24 h by then, k3 not yet
    store._keep(("t", "k9"), Stored("f", 202, b"{}", later), now=later)
    assert len(store) == 3
    assert [store.check("t", k, "f", now=later)[0] for k in ("k2", "k3", "k9")] == ["new", "replay", "replay"]
