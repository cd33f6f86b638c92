"""A restart of the hub loses nothing that was accepted, and answers each submission once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from broker._hub import Hub
from tests.conftest import auth, hub_config, poll, sample
from tests.test_hub_e2e import responses_on_topic

pytestmark = [pytest.mark.integration]

SUBMISSIONS = 60


async def post_many(base: str, count: int, headers: dict[str, str]) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        answers = await asyncio.gather(*(
            client.post("/v1/submissions", content=sample("all-agencies.xml"),
                        headers={"Content-Type": "application/xml"})
            for _ in range(count)
        ))
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers if a.status_code != 202]
    return [a.json()["submission_id"] for a in answers]


async def test_restart_mid_flow_loses_nothing() -> None:
    first = Hub(hub_config())
    await first.start()
    try:
        ids = await post_many(f"http://{first.config.host}:{first.config.port}", SUBMISSIONS, auth(first.config))
    finally:
        await first.stop()  # most submissions are still between topics now

    second = Hub(hub_config(state_dir=first.config.state_dir))
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://{second.config.host}:{second.config.port}",
                                     timeout=30, headers=auth(second.config)) as client:
            async def all_final() -> list[dict[str, Any]] | None:
                bodies = [(await client.get(f"/v1/submissions/{sid}")).json() for sid in ids]
                done = [b for b in bodies if b.get("status") in {"released", "held", "refused"}]
                return bodies if len(done) == len(ids) else None

            bodies = await poll(all_final, timeout=90, what="every submission answered after restart")
        assert {b["response"]["outcome"] for b in bodies} == {"REFUSE"}
        on_topic = await responses_on_topic(set(ids))
        counts = {sid: len(found) for sid, found in on_topic.items()}
        assert all(n == 1 for n in counts.values()), counts
    finally:
        await second.stop()
