"""Bounded memory on the real Kafka: final submissions leave the status view and the aggregator's memory after a
tiny retention, and are still answered exactly as before (status, timeline, response, long-poll, a lodgement
again), read back from the compacted state topic; an amendment after eviction reads the aggregator's state back
and carries the earlier decisions as it does for a submission in memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker._hub import Hub
from tests.conftest import (
    client_of,
    hub_bundles,
    hub_config,
    poll,
    response_of_version,
    sample,
    started,
    weight_amendment,
)
from tests.test_hub_e2e import responses_on_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XML = {"Content-Type": "application/xml"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def small_hub() -> AsyncIterator[Hub]:
    """Final submissions leave the view 1 s after their final state and are never cached when read back
    (every answer below comes from Kafka); the aggregator lets final state go as soon as it may (10 s)."""
    config = hub_config(view_retain_seconds=1.0, view_max_final=10_000, view_cache=0,
                        state_retain_seconds=0.0, state_max_final=0)
    async with started(Hub(config, bundles=hub_bundles())) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(small_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(small_hub, timeout=60) as http:
        yield http


async def answers(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    status = await client.get(f"/v1/submissions/{sid}")
    timeline = await client.get(f"/v1/submissions/{sid}/timeline")
    response = await client.get(f"/v1/submissions/{sid}/response")
    assert (status.status_code, timeline.status_code, response.status_code) == (200, 200, 200)
    return {"status": status.json(), "timeline": timeline.json(), "response": response.json()}


async def test_an_evicted_submission_is_answered_as_before_and_lodging_it_again_is_a_duplicate(
        small_hub: Hub, client: httpx.AsyncClient) -> None:
    view = small_hub.view
    assert view is not None
    body = sample("all-agencies.xml")
    lodged = await client.post("/v1/submissions", content=body, headers=XML)
    assert lodged.status_code == 202, lodged.text
    sid = lodged.json()["submission_id"]
    waited = await client.get(f"/v1/submissions/{sid}/response", params={"wait": 60})
    assert waited.status_code == 200, waited.text
    before = await answers(client, sid)  # right after the final state: still in memory (1 s retention)
    assert before["status"]["status"] == "refused"
    assert before["response"] == waited.json()

    async def evicted() -> bool | None:
        await view.find("0" * 26)  # any request lets those past their retention go
        return True if view.get(sid) is None and sid in view.archive else None

    await poll(evicted, timeout=30, what="the submission to leave the status view's memory")
    loaded = view.loaded
    after = await answers(client, sid)
    assert after == before
    assert view.loaded == loaded + 3  # each answer read the state back from Kafka (no cache here)
    assert view.get(sid) is None  # and it stayed out of memory
    long_poll = await client.get(f"/v1/submissions/{sid}/response", params={"wait": 30})
    assert (long_poll.status_code, long_poll.json()) == (200, before["response"])

    again = await client.post("/v1/submissions", content=body, headers=XML)
    assert again.status_code == 200, again.text
    assert (again.json()["duplicate"], again.json()["status"]) == (True, "refused")
    other = body.decode().replace('<NetNetWeightMeasure unitCode="KGM">640<',
                                  '<NetNetWeightMeasure unitCode="KGM">641<', 1)
    conflict = await client.post("/v1/submissions", content=other.encode(), headers=XML)
    assert conflict.status_code == 409, conflict.text
    assert len((await responses_on_topic({sid}))[sid]) == 1  # nothing was processed again
    unknown = await client.get(f"/v1/submissions/{'1' * 26}")
    assert unknown.status_code == 404


async def test_an_amendment_after_eviction_reads_the_state_back_and_carries_earlier_decisions(
        small_hub: Hub, client: httpx.AsyncClient) -> None:
    view = small_hub.view
    assert view is not None
    reference = f"T-{uuid.uuid4().hex[:20]}"
    original = sample("all-agencies.xml", reference=reference)
    lodged = await client.post("/v1/submissions", content=original, headers=XML)
    assert lodged.status_code == 202, lodged.text
    sid = lodged.json()["submission_id"]
    assert (await client.get(f"/v1/submissions/{sid}/response", params={"wait": 60})).status_code == 200

    async def state_evicted() -> bool | None:
        aggregator = small_hub.aggregator
        await view.find("0" * 26)
        gone = aggregator is not None and aggregator.store.needs_load(sid) and view.get(sid) is None
        return True if gone else None

    await poll(state_evicted, timeout=60, what="the aggregator and the view to let the final state go")
    assert small_hub.aggregator is not None
    loaded = small_hub.aggregator.store.loaded

    amended = weight_amendment(original)
    second = await client.post("/v1/submissions", content=amended, headers=XML)
    assert second.status_code == 202, second.text
    assert second.json()["version"] == 2

    v2 = await response_of_version(client, sid, 2, timeout=60)
    carried = {a["agency"]: a["carried_from_version"] for a in v2["response"]["agencies"]}
    assert carried == {"customs": None, "sps": 1, "cwc": 1, "ipr": 1}  # version 1's decisions came back
    assert small_hub.aggregator.store.loaded == loaded + 1
    responses = (await responses_on_topic({sid}))[sid]
    assert sorted((r["version"], r["response_version"]) for r in responses) == [(1, 1), (2, 1)]
    timeline = (await client.get(f"/v1/submissions/{sid}/timeline")).json()
    assert {e["version"] for e in timeline["events"]} == {1, 2}
