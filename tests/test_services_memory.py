"""The services' behaviour on the in-memory bus: ingress, router, adapters and aggregator as the hub wires them,
each receiving the bus instead of a bootstrap address (``bus.memory.MemoryBus``). No broker, no HTTP server.

What the real Kafka adds (transactions across brokers, fencing, rebalances) is proven by the integration tests
(tests/test_hub_e2e.py, tests/test_processor*.py); these prove what the services do with each record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from adapters import AgencyModes, adapter_handler
from adapters._runner import adapter_spec
from broker._aggregator import Aggregator, aggregator_spec
from broker._envelope import decode
from broker._ingress import Ingress, create_app
from broker._router import Router, router_spec
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
from broker._view import StatusView
from bus import OutMessage, key_partition
from bus.memory import MemoryBus, MemoryProcessor
from schemas import AGENCIES
from tests.conftest import expected_outcomes, sample

XML = {"content-type": "application/xml"}


class MemoryHub:
    """The hub's services on one in-memory bus, stepped by the test."""

    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus
        self.view = StatusView("unused:9092")  # not started: the ingress's own accepted() keeps what it needs
        self.ingress = Ingress(producer=bus.publisher(), view=self.view, max_body_bytes=5_000_000,
                               max_in_flight=50, max_backlog=10_000)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(self.ingress)),
                                        base_url="http://hub")
        # No random selection by customs (1 % of items by default), as tests/conftest.py sets for every hub:
        # the expected outcomes are the rules', and a random hold would make them a draw.
        modes = AgencyModes.from_env({"NSW_CUSTOMS_RANDOM_RATE": "0"}, agencies=AGENCIES)
        self.router = self.processor(router_spec(Router(bus=bus)))
        self.adapters = []
        for agency in AGENCIES:
            handler = adapter_handler(agency, modes)
            assert handler is not None
            self.adapters.append(self.processor(adapter_spec(agency, handler)))
        self.aggregator = self.aggregator_instance()

    def processor(self, spec: Any) -> MemoryProcessor:
        made = self.bus.processor(spec)
        assert isinstance(made, MemoryProcessor)
        return made

    def aggregator_instance(self) -> MemoryProcessor:
        return self.processor(aggregator_spec(Aggregator(bus=self.bus, agencies=AGENCIES), agencies=AGENCIES))

    async def submit(self, name: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/v1/submissions", content=sample(name, **kwargs), headers=XML)

    async def settle(self) -> int:
        return await self.bus.run_until_idle([self.router, *self.adapters, self.aggregator])

    def responses(self, sid: str) -> list[dict[str, Any]]:
        return [decode(m, "ReleaseResponse") for m in self.bus.records(RESPONSES) if m.key == sid.encode()]


@pytest_asyncio.fixture
async def hub() -> AsyncIterator[MemoryHub]:
    made = MemoryHub(MemoryBus(partitions=3))
    try:
        yield made
    finally:
        await made.client.aclose()
        made.ingress.close()


async def test_the_ingress_publishes_an_accepted_declaration_once(hub: MemoryHub) -> None:
    body = sample("plain-goods.xml")
    first = await hub.client.post("/v1/submissions", content=body, headers=XML)
    assert first.status_code == 202, first.text
    sid = first.json()["submission_id"]
    [record] = hub.bus.records(SUBMISSIONS)
    assert record.key == sid.encode()
    assert record.partition == key_partition(sid.encode(), 3), "co-partitioned by submission id"
    assert record.header("nsw-kind") == b"DECLARATION"
    assert decode(record, "Submission")["version"] == 1
    again = await hub.client.post("/v1/submissions", content=body, headers=XML)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert len(hub.bus.records(SUBMISSIONS)) == 1, "a repeat is answered, not published again"


async def test_the_ingress_answers_503_and_accepts_nothing_when_kafka_is_away(hub: MemoryHub) -> None:
    hub.bus.unavailable = True
    answer = await hub.submit("plain-goods.xml")
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["type"].endswith("/unavailable")
    assert hub.bus.records(SUBMISSIONS) == []
    hub.bus.unavailable = False
    assert (await hub.submit("plain-goods.xml")).status_code == 202, "the next try, Kafka back, is accepted"


async def test_the_ingress_refuses_an_invalid_declaration_and_publishes_nothing(hub: MemoryHub) -> None:
    answer = await hub.submit("invalid-missing-commodity-code.xml")
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"], "the answer says what is wrong"
    assert hub.bus.records(SUBMISSIONS) == []


async def test_the_router_asks_the_agencies_the_rules_name_once_per_version(hub: MemoryHub) -> None:
    sid = (await hub.submit("plants-sps.xml")).json()["submission_id"]
    await hub.router.start()
    assert await hub.router.step() == 1
    asked = {agency for agency in AGENCIES
             if any(m.key == sid.encode() for m in hub.bus.records(requests_topic(agency)))}
    assert asked == {"customs", "sps"}
    [plan] = hub.bus.records(ROUTING)
    assert decode(plan, "RoutingPlan")["submission_id"] == sid
    assert [m.key for m in hub.bus.records(ROUTER_STATE)] == [sid.encode()]
    partition = key_partition(sid.encode(), 3)
    assert hub.bus.committed("nsw-router") == {(SUBMISSIONS, partition): 1}
    # The same version delivered again (a producer retry, a redrive): nothing asked twice.
    [record] = hub.bus.records(SUBMISSIONS)
    hub.bus.commit([(OutMessage(topic=SUBMISSIONS, key=record.key or b"", value=record.value,
                                headers=record.headers), None)])
    assert await hub.router.step() == 1
    assert len(hub.bus.records(ROUTING)) == 1
    assert sum(len(hub.bus.records(requests_topic(a))) for a in AGENCIES) == 2


@pytest.mark.parametrize("name", [n for n, e in expected_outcomes().items() if e.get("outcome")
                                  and not n.startswith("amendment")])
async def test_every_sample_gets_its_expected_release_response(hub: MemoryHub, name: str) -> None:
    expected = expected_outcomes()[name]
    sid = (await hub.submit(name)).json()["submission_id"]
    assert await hub.settle() > 0
    [response] = hub.responses(sid)
    assert response["outcome"] == expected["outcome"]
    assert sorted(a["agency"] for a in response["agencies"]) == sorted(expected["agencies"])
    assert hub.bus.records(DLQ) == []


async def test_the_aggregator_dead_letters_a_decision_it_cannot_read_and_goes_on(hub: MemoryHub) -> None:
    hub.bus.commit([(OutMessage(topic=decisions_topic("sps"), key=b"S-unknown", value=b"\x00not avro"), None)])
    sid = (await hub.submit("plain-goods.xml")).json()["submission_id"]
    await hub.settle()
    [letter] = hub.bus.records(DLQ)
    assert letter.value == b"\x00not avro"
    assert letter.header("nsw-service") == b"aggregator"
    assert letter.header("nsw-source-topic") == decisions_topic("sps").encode()
    assert [r["outcome"] for r in hub.responses(sid)] == ["RELEASE"]


async def test_a_restarted_aggregator_restores_its_state_from_the_changelog(hub: MemoryHub) -> None:
    sid = (await hub.submit("plants-sps.xml")).json()["submission_id"]
    await hub.settle()
    assert len(hub.responses(sid)) == 1
    assert any(m.key == sid.encode() for m in hub.bus.records(AGGREGATE_STATE))
    hub.aggregator = hub.aggregator_instance()  # a new instance: nothing in memory, the group's offsets kept
    # A decision delivered again: only the restored state knows it was already counted.
    [decision] = [m for m in hub.bus.records(decisions_topic("sps")) if m.key == sid.encode()]
    hub.bus.commit([(OutMessage(topic=decision.topic, key=decision.key or b"", value=decision.value,
                                headers=decision.headers), None)])
    assert await hub.settle() == 1
    assert len(hub.responses(sid)) == 1, "no second response for news that is not news"
    state = orjson.loads([m for m in hub.bus.records(AGGREGATE_STATE) if m.key == sid.encode()][-1].value)
    # Without the restore, the decision would be kept as an early one, waiting for a plan already handled.
    assert state["plan"] is not None
    assert state["early"] == []
    assert hub.bus.records(DLQ) == []
