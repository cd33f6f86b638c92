"""The topic-mode contract: the example agency system, on the real Kafka, answers in a form the hub reads."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from adapters.examples.topic_consumer import Schemas, TopicAgency, TopicAgencyConfig
from broker._envelope import InMessage, avro_message, header
from broker._topics import TopicSpec
from bus import Producer, ensure_topics, read_to_end
from schemas import registry
from tests.conftest import bootstrap, poll
from tests.test_bridge import sps_request

AVSC = Path(__file__).resolve().parents[1] / "schemas" / "avro"


def test_example_finds_the_hub_schemas_by_the_hub_fingerprints() -> None:
    mine = Schemas(AVSC)
    for name in ("AgencyRequest", "AgencyDecision", "Submission", "ReleaseResponse"):
        hub = registry().get(name)
        assert mine.by_fingerprint[hub.fingerprint][0] == hub.name
    encoded = registry().encode("AgencyRequest", sps_request())
    assert mine.decode(encoded) == ("nsw.v1.AgencyRequest", registry().decode(encoded)[1])


@pytest.mark.integration
@pytest.mark.parametrize("agency", ["sps", "cwc"])
async def test_example_agency_consumes_requests_and_produces_decisions(agency: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    requests, decisions = f"t.contract.{agency}.req.{run_id}", f"t.contract.{agency}.dec.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=1, replication=1) for n in (requests, decisions)])
    submission_id = f"01JCONTRACT{run_id}"
    request = {**sps_request(submission_id), "agency": agency, "request_id": f"{submission_id}:1:{agency}"}
    producer = Producer(bootstrap())
    await producer.start()
    try:
        await producer.send(avro_message(requests, "AgencyRequest", request))
    finally:
        await producer.stop()

    system = TopicAgency(TopicAgencyConfig(agency=agency, bootstrap=bootstrap(), schemas=AVSC,
                                           requests_topic=requests, decisions_topic=decisions,
                                           group_id=f"t.contract.{run_id}"))
    running = asyncio.create_task(system.run())
    try:
        out = await poll(lambda: _decisions(decisions), timeout=60, what="the example agency's decision")
    finally:
        system.stop()
        await asyncio.wait_for(running, timeout=30)
    assert len(out) == 1
    message = out[0]
    assert message.key == submission_id.encode()
    assert header(message.headers, "nsw-schema") == b"nsw.v1.AgencyDecision"
    assert header(message.headers, "nsw-submission-id") == submission_id.encode()
    assert header(message.headers, "nsw-version") == b"1"
    assert header(message.headers, "content-type") == b"avro/binary"
    name, decision = registry().decode(message.value, "AgencyDecision")
    assert name == "nsw.v1.AgencyDecision"
    assert decision["decision_id"] == f"{submission_id}:1:{agency}:example"
    assert (decision["submission_id"], decision["version"], decision["agency"]) == (submission_id, 1, agency)
    assert [(i["sequence"], i["outcome"], i["code"]) for i in decision["items"]] == [(1, "RELEASE", "C01")]


async def _decisions(topic: str) -> list[InMessage] | None:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, 0)], found.append)
    return found or None
