"""The fused core on the real Kafka (broker/_core.py): routing, the embedded engines and the aggregation of a
submission in one transactional step; requests, plans and decisions still on their topics.

Each test starts its own hub: a fused hub and a hub of separate services must never run at once (both would
route the same submissions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from broker._core import CORE_GROUP, CORE_HEADER, CORE_SERVICE
from broker._envelope import InMessage, avro_message
from broker._hub import Hub
from broker._topics import RESPONSES, ROUTING, decisions_topic, requests_topic
from bus import existing_partition_counts, group_offsets, key_partition, read_to_end, transactional_producers
from ops import ByOffsets, consumer_lag, replay
from schemas import AGENCIES, AgencyDecision, registry
from tests.conftest import bootstrap, client_of, hub_bundles, hub_config, poll, publish, request_to, sample, started

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SEPARATE = ("router", "aggregator", *(f"adapter-{a}" for a in AGENCIES))
SEPARATE_GROUPS = tuple(f"nsw-{name}" for name in SEPARATE)
#: plants-sps.xml asks customs and SPS.
ASKED = ("customs", "sps")
WATCHED = (ROUTING, RESPONSES, *(requests_topic(a) for a in ASKED), *(decisions_topic(a) for a in ASKED))


async def lodge(client: httpx.AsyncClient, name: str = "plants-sps.xml") -> str:
    answer = await client.post("/v1/submissions", content=sample(name), headers={"Content-Type": "application/xml"})
    assert answer.status_code == 202, answer.text
    sid: str = answer.json()["submission_id"]
    return sid


async def final_status(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        return body if body.get("response") is not None else None

    return await poll(final, timeout=60, what=f"the response to {sid}")


async def records_of(sid: str, topics: Sequence[str] = WATCHED) -> dict[str, list[InMessage]]:
    """Every committed record of ``sid`` on ``topics`` (its partition of each)."""
    counts = await existing_partition_counts(bootstrap(), topics)
    found: dict[str, list[InMessage]] = {topic: [] for topic in topics}

    def keep(message: InMessage) -> None:
        if message.key == sid.encode():
            found[message.topic].append(message)

    await read_to_end(bootstrap(), [(t, key_partition(sid.encode(), counts[t])) for t in topics], keep)
    return found


def stamped(message: InMessage) -> bool:
    return message.header(CORE_HEADER) is not None


async def test_embedded_agencies_answer_in_one_core_step() -> None:
    async with started(Hub(hub_config(), bundles=hub_bundles())) as hub, client_of(hub) as client:
        assert hub.fused
        names = {s.name for s in hub._supervised}
        assert CORE_SERVICE in names
        assert not names & set(SEPARATE)  # no router, adapter or aggregator group of its own
        before = await group_offsets(bootstrap(), SEPARATE_GROUPS)

        sid = await lodge(client)
        body = await final_status(client, sid)
        assert body["status"] in {"released", "held", "refused"}
        assert sorted(body["decisions"]) == sorted(ASKED)

        found = await records_of(sid)
        number = key_partition(sid.encode(), hub.config.partitions)
        for topic in (ROUTING, *(requests_topic(a) for a in ASKED), *(decisions_topic(a) for a in ASKED)):
            assert len(found[topic]) == 1, (topic, len(found[topic]))  # still written, for audit, trace, replay
            assert stamped(found[topic][0]), topic  # ... and processed in the step that wrote it
        assert len(found[RESPONSES]) == 1
        assert {m.partition for records in found.values() for m in records} == {number}
        decision = registry().decode(found[decisions_topic("sps")][0].value, "AgencyDecision")[1]
        request = registry().decode(found[requests_topic("sps")][0].value, "AgencyRequest")[1]
        assert decision["request_id"] == request["request_id"]

        # The separate services' groups consumed nothing meanwhile; the core's did, and owns the producers.
        assert await group_offsets(bootstrap(), SEPARATE_GROUPS) == before
        async def routing_committed() -> bool | None:
            # The core reads its own plan back and commits that read with its next transaction, or by the
            # timer after a second of quiet (``defer_empty``): poll for it.
            core = (await group_offsets(bootstrap(), [CORE_GROUP]))[CORE_GROUP]
            return True if any(topic == ROUTING for topic, _ in core) else None

        await poll(routing_committed, timeout=30, what="the core group's offset on nsw.routing")
        producers = {labels[0]: count for labels, count in transactional_producers()}
        assert not set(producers) & set(SEPARATE)
        assert 1 <= producers[CORE_SERVICE] <= hub.config.partitions


async def test_an_agency_in_topic_mode_answers_through_its_topic_into_the_same_step(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSW_AGENCY_SPS_MODE", "topic")
    async with started(Hub(hub_config(), bundles=hub_bundles())) as hub, client_of(hub) as client:
        assert hub.fused
        assert not {s.name for s in hub._supervised} & set(SEPARATE)
        sid = await lodge(client)
        request = await request_to("sps", sid)  # the SPS system reads its request ...

        async def customs_decided() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
            return body if "customs" in body.get("decisions", {}) else None

        waiting = await poll(customs_decided, timeout=30, what="the embedded customs decision")
        assert waiting["response"] is None  # SPS has not answered
        decision: AgencyDecision = {
            "decision_id": f"sps-system-{sid}", "submission_id": sid, "version": 1, "agency": "sps",
            "decided_at": int(time.time() * 1000), "request_id": request["request_id"],
            "items": [{"sequence": item["sequence"], "outcome": "RELEASE", "code": "S00", "reason": "phyto ok"}
                      for item in request["items"]],
        }
        await publish(avro_message(decisions_topic("sps"), "AgencyDecision", decision))  # ... and answers
        body = await final_status(client, sid)
        assert sorted(body["decisions"]) == sorted(ASKED)
        assert body["decisions"]["sps"]["decision_id"] == f"sps-system-{sid}"

        found = await records_of(sid)
        assert [stamped(m) for m in found[requests_topic("sps")]] == [False]  # for the agency's system
        assert [stamped(m) for m in found[decisions_topic("sps")]] == [False]
        assert [stamped(m) for m in found[decisions_topic("customs")]] == [True]
        assert len(found[RESPONSES]) == 1


async def test_a_replayed_request_is_decided_again_by_the_core() -> None:
    """What an embedded adapter's group did for a replayed request, the core does: decide it again (same
    decision id, the same answer: no new response)."""
    async with started(Hub(hub_config(), bundles=hub_bundles())) as hub, client_of(hub) as client:
        sid = await lodge(client)
        await final_status(client, sid)
        first = await records_of(sid)
        [asked] = first[requests_topic("customs")]
        report = await replay(bootstrap(), ByOffsets(topic=asked.topic, partition=asked.partition,
                                                     from_offset=asked.offset, to_offset=asked.offset), force=True)
        assert [i.status for i in report.items] == ["sent"], report.as_dict()

        async def decided_again() -> list[InMessage] | None:
            decisions = (await records_of(sid, (decisions_topic("customs"),)))[decisions_topic("customs")]
            return decisions if len(decisions) == 2 else None

        decisions = await poll(decided_again, timeout=30, what="the decision on the replayed request")
        ids = [registry().decode(m.value, "AgencyDecision")[1]["decision_id"] for m in decisions]
        assert ids[0] == ids[1]
        assert all(stamped(m) for m in decisions)
        await idle(sid, [CORE_GROUP])
        assert len((await records_of(sid))[RESPONSES]) == 1  # the same answer again is no news
        assert hub.fused


async def idle(sid: str, groups: Sequence[str]) -> None:
    number = key_partition(sid.encode(), hub_config().partitions)

    async def done() -> bool | None:
        rows = [r for r in await consumer_lag(bootstrap(), groups) if r.partition == number]
        return True if rows and sum(r.lag for r in rows) == 0 else None

    await poll(done, timeout=60, what=f"{', '.join(groups)} to be idle on the partition of {sid}")


async def test_separate_services_after_a_fused_run_decide_nothing_twice() -> None:
    async with started(Hub(hub_config(), bundles=hub_bundles())) as hub, client_of(hub) as client:
        assert hub.fused
        fused_sid = await lodge(client)
        await final_status(client, fused_sid)
    before = await records_of(fused_sid)

    async with started(Hub(hub_config(fused_core=False), bundles=hub_bundles())) as hub, client_of(hub) as client:
        assert not hub.fused
        assert set(SEPARATE) <= {s.name for s in hub._supervised}
        sid = await lodge(client)  # the separate services answer as before ...
        body = await final_status(client, sid)
        assert sorted(body["decisions"]) == sorted(ASKED)
        found = await records_of(sid)
        assert not any(stamped(m) for records in found.values() for m in records)
        # ... and skip what the core processed: the fused run's requests are not decided again.
        await idle(fused_sid, SEPARATE_GROUPS)
        assert await records_of(fused_sid) == before


@pytest.mark.timeout(300)  # two hubs, a burst, and a rebalance after the cut
async def test_a_core_cut_off_mid_burst_loses_nothing_and_answers_once() -> None:
    """The core's task is cancelled in the middle of a burst (its transaction in flight abandoned, the next
    owner's producer fences it); a new hub answers every submission exactly once, each agency asked once."""
    async with started(Hub(hub_config(), bundles=hub_bundles())) as hub, client_of(hub) as client:
        sids = list(await asyncio.gather(*(lodge(client) for _ in range(24))))  # at once: many still in flight
        core = next(s for s in hub._supervised if s.name == CORE_SERVICE)
        assert core.task is not None
        hub._stopping.set()  # no restart: the hub is going away
        core.task.cancel()
    async with started(Hub(hub_config(), bundles=hub_bundles())) as hub, client_of(hub) as client:
        for sid in sids:
            await final_status(client, sid)
        by_partition = {key_partition(sid.encode(), hub.config.partitions): sid for sid in sids}
        for sid in by_partition.values():
            await idle(sid, [CORE_GROUP])
        found = await records_of_all(sids)
        for sid in sids:
            counts = {topic: len(found[(sid, topic)]) for topic in WATCHED}
            assert counts == dict.fromkeys(WATCHED, 1), (sid, counts)


async def records_of_all(sids: Sequence[str]) -> dict[tuple[str, str], list[InMessage]]:
    """Every committed record of ``sids`` on ``WATCHED``, by (submission id, topic), in one read."""
    counts = await existing_partition_counts(bootstrap(), WATCHED)
    found: dict[tuple[str, str], list[InMessage]] = {(sid, topic): [] for sid in sids for topic in WATCHED}

    def keep(message: InMessage) -> None:
        key = (message.key or b"").decode(errors="replace")
        if (key, message.topic) in found:
            found[(key, message.topic)].append(message)

    wanted = {(t, key_partition(sid.encode(), counts[t])) for sid in sids for t in WATCHED}
    await read_to_end(bootstrap(), sorted(wanted), keep)
    return found
