"""The IPR adapter's TRIPS Art. 55 timer on the real Kafka: a suspension, the right holder's notice in the same
transaction, and the timer's own release quoting the same request (a short time-limit by configuration)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import orjson
import pytest

from adapters import AgencyModes, adapter_handler
from adapters._runner import adapter_spec
from adapters.ipr._service import IPRAdapter
from broker._envelope import InMessage, avro_message
from broker._topics import IPR_NOTIFICATIONS, IPR_SUSPENSIONS, decisions_topic, declared_topics, requests_topic
from bus import Producer, TransactionalProcessor, ensure_topics, existing_partition_counts, read_to_end
from schemas import AGENCIES, AgencyRequest, registry
from tests.conftest import bootstrap, poll

pytestmark = [pytest.mark.integration]


def request(sid: str) -> AgencyRequest:
    return {"request_id": f"{sid}:1:ipr", "submission_id": sid, "version": 1, "agency": "ipr", "requested_at": 0,
            "trader_reference": "LRN-1", "declaration_type": "IMZ", "declarant_id": "GB1", "parties": [],
            "authorisations": [], "export_country": "HK", "destination_country": "GB",
            "items": [{"sequence": 1, "description": "ZEN-TRA wristwatches", "commodity_code": "91021100",
                       "origin_country": "HK", "cas_numbers": [], "documents": [], "quantity": None,
                       "quantity_unit": None, "net_mass_kg": None, "value": 10.0, "currency": "GBP"}],
            "reasons": []}


async def committed(topic: str, sid: str) -> list[InMessage]:
    partitions = (await existing_partition_counts(bootstrap(), [topic]))[topic]
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, p) for p in range(partitions)], found.append)
    return [m for m in found if m.key == sid.encode()]


def at_least(topic: str, sid: str, count: int) -> Callable[[], Awaitable[list[InMessage] | None]]:
    async def check() -> list[InMessage] | None:
        found = await committed(topic, sid)
        return found if len(found) >= count else None

    return check


async def test_suspension_notice_and_timer_release_on_kafka() -> None:
    names = {requests_topic("ipr"), decisions_topic("ipr"), IPR_NOTIFICATIONS, IPR_SUSPENSIONS, "nsw.dlq"}
    await ensure_topics(bootstrap(), [t for t in declared_topics(AGENCIES, partitions=6, replication=1)
                                      if t.name in names])
    modes = AgencyModes.from_env({"NSW_IPR_DEADLINE_SECONDS": "2"}, agencies=AGENCIES)
    handler = adapter_handler("ipr", modes, bootstrap=bootstrap())
    assert isinstance(handler, IPRAdapter)
    spec = adapter_spec("ipr", handler)
    assert spec.topics == (requests_topic("ipr"), decisions_topic("ipr"))
    processor = TransactionalProcessor(spec, bootstrap())
    await processor.start()
    running = asyncio.create_task(processor.run())
    sid = f"01JIPRTIMER{uuid.uuid4().hex[:12].upper()}"
    try:
        producer = Producer(bootstrap())
        await producer.start()
        try:
            await producer.send(avro_message(requests_topic("ipr"), "AgencyRequest", request(sid)))
        finally:
            await producer.stop()
        both = await poll(at_least(decisions_topic("ipr"), sid, 2), timeout=90,
                          what="the suspension and the timer's release")
        decisions = [registry().decode(m.value, "AgencyDecision")[1] for m in both]
        assert [(d["decision_id"], d["items"][0]["code"]) for d in decisions] == [
            (f"{sid}:1:ipr:ref", "H01"), (f"{sid}:1:ipr:art55:1", "C04")]
        assert {d["request_id"] for d in decisions} == {f"{sid}:1:ipr"}
        assert decisions[0]["items"][0]["valid_until"] is not None
        notices = await committed(IPR_NOTIFICATIONS, sid)
        assert [orjson.loads(n.value)["right_id"] for n in notices] == ["TM-2021-0001"]
        changelog = await committed(IPR_SUSPENSIONS, sid)
        assert orjson.loads(changelog[0].value)["clocks"]["1"]["state"] == "RUNNING"
        assert changelog[-1].value == b""  # every clock ended: a tombstone, compaction forgets the record
    finally:
        processor.request_stop()
        await asyncio.wait_for(running, timeout=30)
        await processor.stop()


async def test_open_suspension_survives_a_restart_of_the_adapter() -> None:
    """The clock lives in the changelog: a new adapter instance restores it and still releases on time."""
    modes = AgencyModes.from_env({"NSW_IPR_DEADLINE_SECONDS": "6"}, agencies=AGENCIES)
    sid = f"01JIPRRESTART{uuid.uuid4().hex[:10].upper()}"

    def start() -> tuple[TransactionalProcessor, asyncio.Task[None]]:
        handler = adapter_handler("ipr", modes, bootstrap=bootstrap())
        assert handler is not None
        processor = TransactionalProcessor(adapter_spec("ipr", handler), bootstrap())
        return processor, asyncio.create_task(_run(processor))

    first, running = start()
    try:
        producer = Producer(bootstrap())
        await producer.start()
        try:
            await producer.send(avro_message(requests_topic("ipr"), "AgencyRequest", request(sid)))
        finally:
            await producer.stop()
        await poll(at_least(decisions_topic("ipr"), sid, 1), timeout=60, what="the suspension")
    finally:
        first.request_stop()
        await asyncio.wait_for(running, timeout=30)
        await first.stop()
    assert len(await committed(decisions_topic("ipr"), sid)) == 1  # stopped before the time-limit
    second, running = start()
    try:
        both = await poll(at_least(decisions_topic("ipr"), sid, 2), timeout=90, what="the release after restart")
        release = registry().decode(both[1].value, "AgencyDecision")[1]
        assert (release["decision_id"], release["items"][0]["code"]) == (f"{sid}:1:ipr:art55:1", "C04")
    finally:
        second.request_stop()
        await asyncio.wait_for(running, timeout=30)
        await second.stop()


async def _run(processor: TransactionalProcessor) -> None:
    await processor.start()
    await processor.run()
