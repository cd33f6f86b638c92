"""The fused core's step without Kafka (broker/_core.py): one submission in, every output of routing, the
embedded engines and the aggregation out; what it skips and what it takes again. The changelog stores are
only read from Kafka on assignment, which these tests do not do."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import pytest

from adapters import ENGINES
from adapters._runner import AdapterRunner
from broker._aggregator import Aggregator
from broker._core import CORE_HEADER, FusedCore, core_processed, core_topics, stage_of
from broker._envelope import InMessage, OutMessage, avro_message, header
from broker._router import Router
from broker._topics import (
    AGGREGATE_STATE,
    DLQ,
    RESPONSES,
    ROUTER_STATE,
    ROUTING,
    SUBMISSIONS,
    decisions_topic,
    requests_topic,
)
from bus import Handler, RetryPolicy
from bus.memory import MemoryBus
from schemas import AGENCIES, BundleSet, read_submission
from tests.conftest import sample

ASKED = ("customs", "sps")  # plants-sps.xml


def core(engines: dict[str, Handler] | None = None) -> FusedCore:
    if engines is None:
        engines = {a: AdapterRunner(ENGINES[a]).handle for a in AGENCIES}
    return FusedCore(router=Router(bus=MemoryBus()), aggregator=Aggregator(bus=MemoryBus(), agencies=AGENCIES),
                     agencies=AGENCIES, engines=engines, retry=RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0))


def as_read(out: OutMessage, *, offset: int = 0, extra: tuple[tuple[str, bytes], ...] = ()) -> InMessage:
    return InMessage(topic=out.topic, partition=3, offset=offset, timestamp=int(time.time() * 1000), key=out.key,
                     value=out.value, headers=(*out.headers, *extra))


def lodged() -> InMessage:
    sid = f"UNIT{uuid.uuid4().hex[:20].upper()}"
    submission = read_submission(sample("plants-sps.xml"), bundles=BundleSet.default(), submission_id=sid,
                                 received_at=int(time.time() * 1000))
    return as_read(avro_message(SUBMISSIONS, "Submission", submission))


def topics(outputs: Sequence[OutMessage]) -> list[str]:
    return [out.topic for out in outputs]


def step(fused: FusedCore, message: InMessage) -> list[OutMessage]:
    return list(asyncio.run(fused.handle(message)))


def test_one_step_routes_decides_and_answers() -> None:
    fused = core()
    outputs = step(fused, lodged())
    written = topics(outputs)
    for agency in ASKED:
        assert written.count(requests_topic(agency)) == 1
        assert written.count(decisions_topic(agency)) == 1
    assert written.count(ROUTING) == 1
    assert written.count(RESPONSES) == 1  # both embedded agencies decided within the step
    assert ROUTER_STATE in written
    assert AGGREGATE_STATE in written
    assert DLQ not in written
    stamped = {out.topic for out in outputs if header(out.headers, CORE_HEADER) is not None}
    assert stamped == {ROUTING, *(requests_topic(a) for a in ASKED), *(decisions_topic(a) for a in ASKED)}


def test_a_duplicate_produces_nothing_and_own_records_read_back_are_skipped() -> None:
    fused = core()
    submission = lodged()
    outputs = step(fused, submission)
    assert step(fused, submission) == []  # already routed
    for out in outputs:
        if out.topic in {ROUTING, requests_topic("sps"), decisions_topic("sps")}:
            assert core_processed(as_read(out))
            assert step(fused, as_read(out)) == [], out.topic


def test_a_replayed_request_is_decided_again_and_a_router_s_request_is_not() -> None:
    fused = core()
    outputs = step(fused, lodged())
    [request] = [out for out in outputs if out.topic == requests_topic("sps")]
    replayed = as_read(request, extra=(("nsw-replayed-from", b"nsw.agency.sps.requests/3/0"),))
    assert not core_processed(replayed)
    again = topics(step(fused, replayed))
    assert again.count(decisions_topic("sps")) == 1
    assert RESPONSES not in again  # the same answer is no news
    unstamped = InMessage(topic=request.topic, partition=3, offset=1, timestamp=0, key=request.key,
                          value=request.value, headers=tuple(h for h in request.headers if h[0] != CORE_HEADER))
    assert step(fused, unstamped) == []  # a separate router's request: its adapter decided it


def test_an_engine_that_keeps_failing_dead_letters_its_request_and_the_rest_goes_on() -> None:
    def broken(message: InMessage) -> Sequence[OutMessage]:
        raise RuntimeError("engine down")

    engines: dict[str, Handler] = {a: AdapterRunner(ENGINES[a]).handle for a in AGENCIES}
    engines["sps"] = broken
    outputs = step(core(engines), lodged())
    letters = [out for out in outputs if out.topic == DLQ]
    assert [header(out.headers, "nsw-service") for out in letters] == [b"adapter-sps"]
    assert header(letters[0].headers, "nsw-source-topic") == requests_topic("sps").encode()
    written = topics(outputs)
    assert written.count(requests_topic("sps")) == 1  # still asked, for the record and a redrive
    assert decisions_topic("sps") not in written
    assert written.count(decisions_topic("customs")) == 1
    assert RESPONSES not in written  # SPS has not decided


def test_a_bad_submission_is_dead_lettered_in_the_router_s_name() -> None:
    bad = InMessage(topic=SUBMISSIONS, partition=0, offset=7, timestamp=0, key=b"X", value=b"not avro", headers=())
    [letter] = step(core(), bad)
    assert letter.topic == DLQ
    assert header(letter.headers, "nsw-service") == b"router"


@pytest.mark.parametrize(("topic", "service"), [
    (SUBMISSIONS, "router"), (requests_topic("ipr"), "adapter-ipr"), (ROUTING, "aggregator"),
    (decisions_topic("sps"), "aggregator")])
def test_dead_letters_name_the_step(topic: str, service: str) -> None:
    assert stage_of(topic) == service


def test_the_core_reads_every_decisions_topic_and_only_the_embedded_requests() -> None:
    read = core_topics(AGENCIES, ["customs"])
    assert read[:2] == (SUBMISSIONS, ROUTING)
    assert requests_topic("customs") in read
    assert requests_topic("sps") not in read
    assert {decisions_topic(a) for a in AGENCIES} <= set(read)


def test_own_records_read_back_do_not_read_an_evicted_state_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # A restarted instance reads the core's own records again, of submissions long final and evicted: reading
    # each one's state back from the changelog made a batch outlast its transaction (the fault campaign's stall).
    fused = core()
    outputs = step(fused, lodged())
    loads: list[str] = []
    evicted = {outputs[0].key.decode()} if outputs[0].key else set()

    async def load(key: str) -> None:
        loads.append(key)
        evicted.discard(key)  # as read back

    for store in (fused.router.store, fused.aggregator.store):
        monkeypatch.setattr(store, "needs_load", lambda key: key in evicted)
        monkeypatch.setattr(store, "load", load)
    own = [as_read(out) for out in outputs if out.topic in {ROUTING, requests_topic("sps"), decisions_topic("sps")}]
    assert own
    for message in own:
        assert step(fused, message) == [], message.topic
    assert loads == []
    replayed = as_read(next(o for o in outputs if o.topic == requests_topic("sps")),
                       extra=(("nsw-replayed-from", b"nsw.agency.sps.requests/3/0"),))  # fmt: skip
    step(fused, replayed)
    assert loads  # new work still reads its state back first
