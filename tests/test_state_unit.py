"""The changelog store's timer view: only the active values of one partition, whatever the history holds."""

from __future__ import annotations

from broker._archive import TimerIndex
from broker._state import ChangelogStore
from bus.memory import MemoryBus


def store() -> ChangelogStore[dict[str, str]]:
    return ChangelogStore(bus=MemoryBus(), topic="t.state", name="unit",
                          active=lambda value: value["status"] == "open")


def test_timers_see_only_open_values_of_their_partition() -> None:
    s = store()
    s.put("a", {"status": "open"}, partition=0)
    s.put("b", {"status": "open"}, partition=1)
    s.put("c", {"status": "done"}, partition=0)
    assert [k for k, _ in s.in_partition(0)] == ["a"]
    s.put("a", {"status": "done"}, partition=0)  # closed: no longer walked, still known
    assert list(s.in_partition(0)) == []
    assert s.get("a") == {"status": "done"}
    s.put("c", {"status": "open"}, partition=0)  # reopened (an amendment)
    assert [k for k, _ in s.in_partition(0)] == ["c"]
    assert [k for k, _ in s.in_partition(1)] == ["b"]


def test_a_put_while_walking_is_safe_and_drop_forgets_a_partition() -> None:
    s = store()
    for key in "abc":
        s.put(key, {"status": "open"}, partition=2)
    for key, _ in s.in_partition(2):
        s.put(key, {"status": "done"}, partition=2)
    assert list(s.in_partition(2)) == []
    s.put("d", {"status": "open"}, partition=2)
    s.drop({2})
    assert (list(s.in_partition(2)), s.get("d"), len(s)) == ([], None, 0)


def test_without_a_predicate_every_value_is_active() -> None:
    s: ChangelogStore[int] = ChangelogStore(bus=MemoryBus(), topic="t", name="unit")
    s.put("x", 1, partition=0)
    assert list(s.in_partition(0)) == [("x", 1)]


# --- open values that wait on a timer may leave memory too (``due``) ------------------------------------


def test_the_timer_index_gives_a_partitions_due_keys_earliest_first() -> None:
    timers = TimerIndex()
    assert timers.due(0, 10**15) == []
    timers.put("late", 0, 300)
    timers.put("early", 0, 100)
    timers.put("other", 1, 50)
    timers.put("moved", 0, 900)
    timers.put("moved", 0, 200)  # a new due time replaces the old
    assert len(timers) == 4
    assert timers.due(0, 250) == ["early", "moved"]
    assert timers.due(0, 1000, limit=2) == ["early", "moved"]
    assert timers.due(1, 1000) == ["other"]
    timers.discard("early")
    timers.discard("never")
    assert (timers.due(0, 1000), len(timers)) == (["moved", "late"], 3)
    timers.drop({0})
    assert (timers.due(0, 1000), timers.due(1, 1000), len(timers)) == ([], ["other"], 1)
    timers.close()
    assert timers.due(1, 1000) == []


def waiting_store(clock: list[float]) -> ChangelogStore[dict[str, int]]:
    return ChangelogStore(bus=MemoryBus(), topic="t.state", name="unit", active=lambda value: value["due"] > 0,
                          due=lambda value: value["due"], retain_seconds=60, clock=lambda: clock[0])


def test_open_values_leave_memory_after_the_retention_with_their_due_time_on_disk() -> None:
    clock = [1_800_000_000.0]
    s = waiting_store(clock)
    s.put("a", {"due": 5_000}, partition=0)
    s.put("b", {"due": 9_000}, partition=0)
    s.put("c", {"due": 0}, partition=0)  # not open: leaves as final work does
    assert (len(s), len(s.timers)) == (3, 0)
    clock[0] += 61
    assert list(s.in_partition(0)) == []
    assert (len(s), len(s.timers), s.evicted) == (0, 2, 3)
    assert all(s.needs_load(k) for k in "abc")
    assert s.due_keys(0, 4_999) == []
    assert s.due_keys(0, 9_000) == ["a", "b"]
    assert s.due_keys(1, 9_000) == []
    s.put("a", {"due": 7_000}, partition=0)  # written again (a new version): in memory, off the disk
    assert (s.get("a"), s.due_keys(0, 9_000), len(s.timers)) == ({"due": 7_000}, ["b"], 1)
    s.delete("b", partition=0)
    assert (s.due_keys(0, 9_000), len(s.timers), s.needs_load("b")) == ([], 0, False)


def test_a_value_leaving_memory_during_a_timer_walk_is_skipped_not_an_error() -> None:
    clock = [1_800_000_000.0]
    s = waiting_store(clock)
    for key in "abc":
        s.put(key, {"due": 5_000}, partition=3)
    walked = []
    for key, _ in s.in_partition(3):
        walked.append(key)
        clock[0] += 61  # the walk's first put, past the retention, lets the other two go
        s.put(key, {"due": 6_000}, partition=3)
    assert walked == ["a"]
    assert (s.get("a"), s.due_keys(3, 10_000)) == ({"due": 6_000}, ["b", "c"])
