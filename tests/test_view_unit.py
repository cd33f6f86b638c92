"""The status view rebuilt from topics read in any order (as after a restart): pure, no broker."""

from __future__ import annotations

import orjson

from broker._aggregate import AggregateState, new_state
from broker._envelope import InMessage
from broker._topics import AGGREGATE_STATE, SUBMISSIONS
from broker._view import BACKLOG_WINDOW_MS, StatusView


def message(topic: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> InMessage:
    return InMessage(topic=topic, partition=0, offset=0, timestamp=1, key=b"S1", value=value, headers=headers)


def routed_state(sid: str) -> AggregateState:
    state = new_state(sid)
    state["version"] = 1
    state["plan"] = {"submission_id": sid, "version": 1, "routed_at": 1, "received_at": 1, "trader_reference": "R",
                     "declarant_id": "D", "item_sequences": [1], "agencies": []}
    return state


def test_owner_comes_from_the_lodgement_even_when_state_is_read_first() -> None:
    view = StatusView("unused:9092")
    view._apply(message(AGGREGATE_STATE, orjson.dumps(routed_state("S1"))))
    entry = view.get("S1")
    assert entry is not None
    assert entry.trader == "anonymous"
    view._apply(message(SUBMISSIONS, b"", (("nsw-version", b"1"), ("nsw-trader", b"acme"),
                                           ("nsw-content-digest", b"d1"))))
    assert entry.trader == "acme"
    assert entry.known.digests == {1: "d1"}


def test_backlog_counts_accepted_versions_until_their_routing_is_recorded() -> None:
    view = StatusView("unused:9092")
    now = 10_000_000
    for n, sid in enumerate(("S1", "S2", "S3")):
        view.accepted(sid, version=1, received_at=now - 1000 + n, digest="d", kind="DECLARATION", trader="t")
    assert view.backlog(now) == 3
    view._apply(message(AGGREGATE_STATE, orjson.dumps(routed_state("S1"))))  # the aggregator has S1's routing plan
    assert view.backlog(now) == 2
    view.accepted("S1", version=2, received_at=now, digest="d2", kind="AMENDMENT", trader="t")
    assert view.backlog(now) == 3  # the amendment waits for routing again
    view._apply(message(AGGREGATE_STATE, orjson.dumps(routed_state("S1"))))  # a late copy of version 1 changes nothing
    assert view.backlog(now) == 3


def test_backlog_leaves_out_submissions_stuck_longer_than_the_window() -> None:
    view = StatusView("unused:9092")
    now = 10_000_000
    view.accepted("OLD", version=1, received_at=now - BACKLOG_WINDOW_MS - 1, digest="d", kind="DECLARATION",
                  trader="t")
    view.accepted("NEW", version=1, received_at=now, digest="d", kind="DECLARATION", trader="t")
    assert view.backlog(now) == 1


def test_decisions_waiting_for_a_plan_make_no_submission() -> None:
    """A decision for an id nobody lodged yet (a predictable one, say) must not make the id known:
    the trader's own lodgement of it would be refused as a conflict."""
    view = StatusView("unused:9092")
    early = new_state("S1")
    early["early"] = [{"decision": {"decision_id": "d", "submission_id": "S1", "version": 1, "agency": "ipr",
                                    "decided_at": 1, "items": []},
                       "sender": "ipr", "received_at": 1, "topic": "t", "partition": 0, "offset": 0}]
    view._apply(message(AGGREGATE_STATE, orjson.dumps(early)))
    assert view.get("S1") is None
    view._apply(message(AGGREGATE_STATE, orjson.dumps(routed_state("S1"))))
    assert view.get("S1") is not None
