"""The status view rebuilt from topics read in any order (as after a restart): pure, no broker."""

from __future__ import annotations

import orjson

from broker._aggregate import new_state
from broker._envelope import InMessage
from broker._topics import AGGREGATE_STATE, SUBMISSIONS
from broker._view import StatusView


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
