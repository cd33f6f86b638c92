"""The HTTP bridge as a transactional processor on the real Kafka, calling a real agency server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from adapters import BridgeConfig, HttpBridge
from broker._envelope import InMessage, avro_message, header
from broker._topics import TopicSpec
from bus import ProcessorSpec, Producer, RetryPolicy, TransactionalProcessor, ensure_topics, read_to_end
from schemas import registry
from tests.conftest import bootstrap, free_port, poll
from tests.test_bridge import FakeAgency, Running, serve, sps_request

pytestmark = [pytest.mark.integration]


@pytest_asyncio.fixture
async def agency() -> AsyncIterator[Running]:
    fake = FakeAgency()
    port = free_port()
    server, task = await serve(fake.app(), port)
    running = Running(fake, port, server, task)
    try:
        yield running
    finally:
        await running.stop()


async def committed(topic: str) -> list[InMessage]:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, 0)], found.append)
    return found


async def test_request_goes_to_the_agency_and_its_decision_to_the_decisions_topic(agency: Running) -> None:
    run_id = uuid.uuid4().hex[:8]
    requests, decisions, dlq = f"t.bridge.req.{run_id}", f"t.bridge.dec.{run_id}", f"t.bridge.dlq.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=1, replication=1)
                                      for n in (requests, decisions, dlq)])
    agency.agency.fail_first = 1  # one 503 on the way: retried inside the bridge
    good, bad = f"01JBRIDGEOK{run_id}", f"01JBRIDGEKO{run_id}"

    producer = Producer(bootstrap())
    await producer.start()
    try:
        await producer.send(avro_message(requests, "AgencyRequest", sps_request(good)))
    finally:
        await producer.stop()

    bridge = HttpBridge(BridgeConfig(agency="sps", url=agency.url, retries=2, backoff_base=0.01, backoff_max=0.05,
                                     budget=10, output_topic=decisions))
    processor = TransactionalProcessor(
        ProcessorSpec(service="adapter-sps", group_id=f"t.bridge.{run_id}", topics=(requests,),
                      transactional_prefix=f"t.bridge.{run_id}", handler=bridge, dlq=dlq,
                      retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)),
        bootstrap(),
    )
    await processor.start()
    running = asyncio.create_task(processor.run())
    try:
        out = await poll(lambda: _at_least(decisions, 1), timeout=60, what="the agency's decision on Kafka")
        assert out[0].key == good.encode()
        assert header(out[0].headers, "nsw-submission-id") == good.encode()
        _, decision = registry().decode(out[0].value, "AgencyDecision")
        assert (decision["agency"], decision["submission_id"], decision["decision_id"]) == ("sps", good, f"SPS-{good}")
        assert [i["outcome"] for i in decision["items"]] == ["RELEASE"]

        # A request the agency refuses (4xx) is dead-lettered at once, with the agency's reason.
        agency.agency.behaviour = "reject"
        producer = Producer(bootstrap())
        await producer.start()
        try:
            await producer.send(avro_message(requests, "AgencyRequest", sps_request(bad)))
        finally:
            await producer.stop()
        dead = await poll(lambda: _at_least(dlq, 1), timeout=60, what="the dead letter")
        assert dead[0].key == bad.encode()
        assert header(dead[0].headers, "nsw-error-type") == b"AgencyRejected"
        assert header(dead[0].headers, "nsw-attempts") == b"1"
        assert b"not in our tariff" in (header(dead[0].headers, "nsw-error-message") or b"")
        assert len(await committed(decisions)) == 1
    finally:
        processor.request_stop()
        await asyncio.wait_for(running, timeout=30)
        await processor.stop()
        await bridge.aclose()


async def _at_least(topic: str, count: int) -> list[InMessage] | None:
    found = await committed(topic)
    return found if len(found) >= count else None
