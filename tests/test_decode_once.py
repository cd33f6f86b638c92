"""Decode once (broker/_envelope.py, broker/_core.py): a record handed on within the fused step carries what it
decodes to; the bytes written are the same as without it, what the next stage reads is what the bytes say, and
nothing one stage changes in what it read reaches another. No Kafka: the stores are only read on assignment."""

from __future__ import annotations

import asyncio
import copy
import secrets
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest

import broker._core
from adapters import ENGINES
from adapters._runner import AdapterRunner, decision_message
from broker._aggregator import Aggregator
from broker._core import FusedCore
from broker._envelope import Carried, InMessage, OutMessage, avro_message, decode
from broker._router import Router
from broker._topics import RESPONSES, SUBMISSIONS, decisions_topic, requests_topic
from bus import Handler, RetryPolicy
from bus.memory import MemoryBus
from schemas import AGENCIES, AgencyDecision, AgencyRequest, AvroDecodeError, BundleSet, read_submission, registry
from tests.conftest import sample

SAMPLES = ("all-agencies.xml", "plants-sps.xml", "branded-ipr.xml", "chemical-cwc.xml", "plain-goods.xml",
           "export-laptops.xml")
NOW = 1_764_000_000_000


def fixed_core(engines: dict[str, Handler] | None = None, *, attempts: int = 1) -> FusedCore:
    clock: Callable[[], int] = lambda: NOW  # noqa: E731 - the same instant in every stage
    if engines is None:
        engines = {a: AdapterRunner(ENGINES[a], clock=clock).handle for a in AGENCIES}
    return FusedCore(router=Router(bus=MemoryBus(), clock=clock),
                     aggregator=Aggregator(bus=MemoryBus(), agencies=AGENCIES, clock=clock),
                     agencies=AGENCIES, engines=engines,
                     retry=RetryPolicy(attempts=attempts, base_delay=0.0, max_delay=0.0))


def read_back(out: OutMessage, *, offset: int = 0) -> InMessage:
    """``out`` as a consumer reads it from its topic: bytes only."""
    return InMessage(topic=out.topic, partition=2, offset=offset, timestamp=NOW, key=out.key, value=out.value,
                     headers=out.headers)


def lodged(name: str, reference: str) -> InMessage:
    submission = read_submission(sample(name, reference=reference), bundles=BundleSet.default(),
                                 submission_id=f"DEC{reference}", received_at=NOW)
    return read_back(avro_message(SUBMISSIONS, "Submission", submission))


def wire(outputs: Sequence[OutMessage]) -> list[tuple[str, bytes, bytes, tuple[tuple[str, bytes], ...]]]:
    return [(o.topic, o.key, o.value, o.headers) for o in outputs]


def step(fused: FusedCore, message: InMessage) -> list[OutMessage]:
    return list(asyncio.run(fused.handle(message)))


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The schema of every record decoded from bytes from now on (not those handed on decoded)."""
    reg = registry()
    decoding = reg.decode
    seen: list[str] = []

    def counted(data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        found = decoding(data, expected)
        seen.append(found[0])
        return found

    monkeypatch.setattr(reg, "decode", counted)
    return seen


def request_record(agency: str = "sps") -> AgencyRequest:
    submission = read_submission(sample("plants-sps.xml"), bundles=BundleSet.default(), submission_id="DECREQ",
                                 received_at=NOW)
    return {"request_id": "DECREQ:1:sps:00", "submission_id": "DECREQ", "version": 1, "agency": agency,
            "requested_at": NOW, "trader_reference": submission["trader_reference"],
            "declaration_type": submission["declaration_type"], "declarant_id": submission["declarant_id"],
            "parties": submission["parties"], "authorisations": submission["authorisations"],
            "export_country": submission["export_country"], "destination_country": submission["destination_country"],
            "items": submission["items"], "reasons": [{"item": 1, "rule": "r", "why": "d"}],
            "kind": "DECLARATION", "direction": "", "additional_type": ""}


@pytest.mark.parametrize("name", SAMPLES)
def test_the_step_writes_the_same_records_with_and_without_the_carried_values(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "token_hex", lambda n: "0" * (2 * n))  # request ids: the same in both runs
    schemas = count_decodes(monkeypatch)
    reference = uuid.uuid4().hex[:16].upper()
    carried = step(fixed_core(), lodged(name, reference))
    assert schemas == ["nsw.v1.Submission"]  # the only record of the step read from a topic
    schemas.clear()
    handed = broker._core._as_input
    monkeypatch.setattr(broker._core, "_as_input",
                        lambda out, partition: handed(OutMessage(out.topic, out.key, out.value, out.headers),
                                                      partition))
    decoded = step(fixed_core(), lodged(name, reference))
    asked = sum(o.topic.endswith(".requests") for o in decoded)
    assert asked > 0
    assert sorted(schemas) == sorted(["nsw.v1.Submission"] + ["nsw.v1.AgencyRequest"] * asked
                                     + ["nsw.v1.AgencyDecision"] * asked)
    assert wire(carried) == wire(decoded)  # requests, plan, decisions, both changelogs, the response: byte for byte
    assert RESPONSES in [o.topic for o in carried]


@pytest.mark.parametrize("name", SAMPLES)
def test_every_carried_value_is_what_its_bytes_decode_to(name: str) -> None:
    outputs = step(fixed_core(), lodged(name, uuid.uuid4().hex[:16].upper()))
    kept = [o for o in outputs if isinstance(o.decoded, Carried)]
    assert {o.topic for o in kept} >= {t for o in outputs for t in (o.topic,)
                                       if t.endswith((".requests", ".decisions"))}
    for out in kept:
        assert isinstance(out.decoded, Carried)
        schema, record = registry().decode(out.value)
        assert out.decoded.schema == schema
        assert out.decoded.snapshot == orjson.dumps(record), out.topic  # same fields, order, types, defaults


def test_a_record_read_from_a_topic_is_decoded_from_its_bytes() -> None:
    out = avro_message(requests_topic("sps"), "AgencyRequest", request_record(), carry=True)
    assert isinstance(out.decoded, Carried)
    from_topic = read_back(out)
    assert from_topic.decoded is None
    assert decode(from_topic, "AgencyRequest") == decode(read_back(out), "AgencyRequest")
    handed = InMessage(topic=out.topic, partition=2, offset=0, timestamp=NOW, key=out.key, value=out.value,
                       headers=out.headers, decoded=out.decoded)
    assert decode(handed, "AgencyRequest") == decode(from_topic, "AgencyRequest")
    assert handed == from_topic  # the carried value takes no part in equality


def test_without_carry_nothing_is_kept() -> None:
    assert avro_message(requests_topic("sps"), "AgencyRequest", request_record()).decoded is None


def test_a_record_not_in_the_schema_s_form_is_not_carried_and_still_decodes() -> None:
    short = request_record()
    del short["additional_type"]  # has a default: the bytes are fine, the dict is not what they decode to
    out = avro_message(requests_topic("sps"), "AgencyRequest", short, carry=True)
    assert out.decoded is None
    assert decode(read_back(out), "AgencyRequest")["additional_type"] == ""
    extra = {**request_record(), "not_in_schema": 1}
    assert avro_message(requests_topic("sps"), "AgencyRequest", extra, carry=True).decoded is None


def test_a_carried_value_of_another_schema_is_refused_as_the_bytes_would_be() -> None:
    out = avro_message(requests_topic("sps"), "AgencyRequest", request_record(), carry=True)
    handed = InMessage(topic=out.topic, partition=0, offset=-1, timestamp=NOW, key=out.key, value=out.value,
                       headers=out.headers, decoded=out.decoded)
    with pytest.raises(AvroDecodeError):
        decode(handed, "AgencyDecision")
    with pytest.raises(AvroDecodeError):
        decode(read_back(out), "AgencyDecision")


def test_what_a_stage_changes_reaches_neither_the_bytes_nor_the_next_reader() -> None:
    record = request_record()
    original = copy.deepcopy(record)
    out = avro_message(requests_topic("sps"), "AgencyRequest", record, carry=True)
    record["items"].clear()  # the producer changes its dict after encoding
    record["parties"][0]["name"] = "changed"
    handed = InMessage(topic=out.topic, partition=0, offset=-1, timestamp=NOW, key=out.key, value=out.value,
                       headers=out.headers, decoded=out.decoded)
    first = decode(handed, "AgencyRequest")
    assert first == decode(read_back(out), "AgencyRequest")
    assert first["items"] == original["items"]
    first["items"].clear()  # a reader changes what it read
    first["reasons"].append({"item": 9, "rule": "x", "why": "y"})
    second = decode(handed, "AgencyRequest")
    assert second["items"] == original["items"]
    assert second["reasons"] == original["reasons"]
    assert second is not first


def test_an_engine_that_changes_its_request_then_fails_is_retried_with_the_request_as_sent() -> None:
    seen: list[AgencyRequest] = []
    runner = AdapterRunner(ENGINES["sps"], clock=lambda: NOW)

    def spoiling(message: InMessage) -> Sequence[OutMessage]:
        request: Any = decode(message, "AgencyRequest")
        seen.append(copy.deepcopy(request))
        if len(seen) == 1:
            request["items"].clear()
            request["kind"] = "CANCELLATION"
            raise RuntimeError("engine hiccup")
        return runner.handle(message)

    engines: dict[str, Handler] = {a: AdapterRunner(ENGINES[a], clock=lambda: NOW).handle for a in AGENCIES}
    engines["sps"] = spoiling
    outputs = step(fixed_core(engines, attempts=2), lodged("plants-sps.xml", uuid.uuid4().hex[:16].upper()))
    assert len(seen) == 2
    assert seen[0] == seen[1]
    assert seen[1]["items"]
    assert [o.topic for o in outputs].count(decisions_topic("sps")) == 1
    assert RESPONSES in [o.topic for o in outputs]


def test_the_aggregation_reads_each_decision_as_its_bytes_say() -> None:
    taken: list[AgencyDecision] = []
    fused = fixed_core()
    take = fused.aggregator.take_decision

    def keep(decision: AgencyDecision, **kwargs: Any) -> list[OutMessage]:
        taken.append(copy.deepcopy(decision))
        return take(decision, **kwargs)

    fused.aggregator.take_decision = keep  # type: ignore[method-assign]
    outputs = step(fused, lodged("all-agencies.xml", uuid.uuid4().hex[:16].upper()))
    written = [decode(read_back(o), "AgencyDecision") for o in outputs if o.topic.endswith(".decisions")]
    assert taken == written
    assert len(taken) == 4  # all-agencies.xml asks customs, SPS, CWC and IPR


def test_a_decision_message_has_the_bytes_of_the_decision_it_was_made_from() -> None:
    decision: AgencyDecision = {"decision_id": "R:ref", "submission_id": "S", "version": 1, "agency": "sps",
                                "decided_at": NOW, "items": [{"sequence": 1, "outcome": "RELEASE", "code": "A1",
                                                              "reason": "ok"}], "request_id": "R"}
    message = decision_message("sps", decision)
    assert message.value == avro_message(decisions_topic("sps"), "AgencyDecision", decision).value
    assert isinstance(message.decoded, Carried)
    assert message.decoded.record() == decode(read_back(message), "AgencyDecision")
    assert "decided_by" not in decision  # the engine's own dict is left as it was
