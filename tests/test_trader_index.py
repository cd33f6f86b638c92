"""Each trader's submissions, newest first (broker/_trader_index.py), and the status view keeping it."""

from __future__ import annotations

import orjson

from broker._aggregate import new_state
from broker._envelope import InMessage
from broker._topics import AGGREGATE_STATE, SUBMISSIONS
from broker._trader_index import TraderIndex
from broker._view import StatusView


def test_pages_are_newest_first_slices() -> None:
    index = TraderIndex()
    for n in range(120):
        index.place(f"S{n:03d}", "acme" if n % 3 else "globex", 1000 + n)
    assert index.count("acme") == 80
    assert index.count("globex") == 40
    first = index.page("acme", 0, 50)
    assert len(first) == 50
    assert first[0] == "S119"
    assert first[1] == "S118"
    second = index.page("acme", 50, 50)
    assert len(second) == 30
    assert not set(first) & set(second)
    assert index.page("acme", 80, 50) == []
    assert index.page("nobody", 0, 50) == []
    assert list(index.newest_first("globex"))[:2] == ["S117", "S114"]


def test_an_amendment_makes_a_submission_the_newest() -> None:
    index = TraderIndex()
    index.place("OLD", "acme", 1)
    index.place("NEW", "acme", 2)
    index.place("OLD", "acme", 3)  # version 2 lodged later
    assert index.page("acme", 0, 10) == ["OLD", "NEW"]
    assert index.count("acme") == 2


def test_a_submission_moves_when_its_owner_is_learnt() -> None:
    index = TraderIndex()
    index.place("S1", "anonymous", 5)
    index.place("S1", "acme", 5)
    assert index.count("anonymous") == 0
    assert index.page("acme", 0, 10) == ["S1"]
    assert index.owner("S1") == "acme"


def test_the_view_files_lodgements_and_states_read_in_any_order() -> None:
    view = StatusView("unused:9092")
    state = new_state("S1")
    state["version"] = 1
    state["plan"] = {"submission_id": "S1", "version": 1, "routed_at": 9, "received_at": 7, "trader_reference": "R",
                     "declarant_id": "D", "item_sequences": [1], "agencies": [], "trader": "acme"}
    # Catching up: the aggregator's state is read before the lodgement.
    view._apply(InMessage(topic=AGGREGATE_STATE, partition=0, offset=0, timestamp=9, key=b"S1",
                          value=orjson.dumps(state), headers=()))
    assert view.by_trader.page("acme", 0, 10) == ["S1"]
    view._apply(InMessage(topic=SUBMISSIONS, partition=0, offset=0, timestamp=7, key=b"S1", value=b"",
                          headers=(("nsw-version", b"1"), ("nsw-trader", b"acme"))))
    view.accepted("S2", version=1, received_at=8, digest="d", kind="DECLARATION", trader="acme")
    view.accepted("S3", version=1, received_at=9, digest="d", kind="DECLARATION", trader="globex")
    assert view.by_trader.page("acme", 0, 10) == ["S2", "S1"]
    view.accepted("S1", version=2, received_at=20, digest="d2", kind="AMENDMENT", trader="acme")
    assert view.by_trader.page("acme", 0, 10) == ["S1", "S2"]
    assert view.by_trader.page("globex", 0, 10) == ["S3"]
