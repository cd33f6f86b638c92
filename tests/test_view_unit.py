"""The status view rebuilt from topics read in any order (as after a restart): pure, no broker."""

from __future__ import annotations

import orjson

from broker._aggregate import new_state
from broker._envelope import InMessage
from broker._topics import AGGREGATE_STATE, SUBMISSIONS
from broker._view import BACKLOG_WINDOW_MS, StatusView


def message(topic: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> InMessage:
    return InMessage(topic=topic, partition=0, offset=0, timestamp=1, key=b"S1", value=value, headers=headers)


def test_owner_comes_from_the_lodgement_even_when_state_is_read_first() -> None:
    view = StatusView("unused:9092")
    state = new_state("S1")
    state["version"] = 1
    view._apply(message(AGGREGATE_STATE, orjson.dumps(state)))
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
    routed = new_state("S1")
    routed["version"] = 1
    view._apply(message(AGGREGATE_STATE, orjson.dumps(routed)))  # the aggregator has S1's routing plan
    assert view.backlog(now) == 2
    view.accepted("S1", version=2, received_at=now, digest="d2", kind="AMENDMENT", trader="t")
    assert view.backlog(now) == 3  # the amendment waits for routing again
    view._apply(message(AGGREGATE_STATE, orjson.dumps(routed)))  # a late copy of version 1 changes nothing
    assert view.backlog(now) == 3


def test_backlog_leaves_out_submissions_stuck_longer_than_the_window() -> None:
    view = StatusView("unused:9092")
    now = 10_000_000
    view.accepted("OLD", version=1, received_at=now - BACKLOG_WINDOW_MS - 1, digest="d", kind="DECLARATION",
                  trader="t")
    view.accepted("NEW", version=1, received_at=now, digest="d", kind="DECLARATION", trader="t")
    assert view.backlog(now) == 1
