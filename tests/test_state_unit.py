"""The changelog store's timer view: only the active values of one partition, whatever the history holds."""

from __future__ import annotations

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
