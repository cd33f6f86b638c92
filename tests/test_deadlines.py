"""Deadlines on the real Kafka: an agency that does not answer in time is escalated, never released.

The IPR agency runs in topic mode here (its own system consumes its topic; the hub runs no adapter),
with a one-second deadline; the test then plays the agency and decides late.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker import decisions_topic
from broker._envelope import avro_message
from schemas import AgencyDecision
from tests.conftest import poll, publish, request_to, sample, topic_mode_client

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def slow_ipr_client() -> AsyncIterator[httpx.AsyncClient]:
    async with topic_mode_client("ipr", deadlines={"customs": 600, "sps": 600, "cwc": 600, "ipr": 1}) as client:
        yield client


async def status_of(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
    return body


async def test_missed_deadline_escalates_then_late_decision_answers(slow_ipr_client: httpx.AsyncClient) -> None:
    client = slow_ipr_client
    sid = (await client.post("/v1/submissions", content=sample("branded-ipr.xml"),
                             headers={"Content-Type": "application/xml"})).json()["submission_id"]

    async def escalated() -> dict[str, Any] | None:
        body = await status_of(client, sid)
        # IPR's 1 s deadline may pass before customs (600 s) has decided on a loaded machine: wait for both.
        return body if body["status"] == "escalated" and "customs" in body["decisions"] else None

    body = await poll(escalated, timeout=30, what="escalation of the IPR deadline")
    assert list(body["escalated_agencies"]) == ["ipr"]
    assert body["pending_agencies"] == ["ipr"]
    assert body["response"] is None
    assert "customs" in body["decisions"]

    request = await request_to("ipr", sid)  # the agency's system answers the request it read
    decision: AgencyDecision = {
        "decision_id": f"ipr-officer-{sid}", "submission_id": sid, "version": 1, "agency": "ipr",
        "decided_at": int(time.time() * 1000), "request_id": request["request_id"],
        "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "right holder consents"}],
    }
    await publish(avro_message(decisions_topic("ipr"), "AgencyDecision", decision))

    async def released() -> dict[str, Any] | None:
        body = await status_of(client, sid)
        return body if body["status"] == "released" else None

    final = await poll(released, timeout=30, what="the release after the late decision")
    assert final["response"]["outcome"] == "RELEASE"
    steps = [e["step"] for e in (await client.get(f"/v1/submissions/{sid}/timeline")).json()["events"]]
    assert steps.index("escalated") < steps.index("responded")
