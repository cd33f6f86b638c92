"""Back-pressure on the real Kafka: when accepted submissions pile up unrouted, the ingress answers 503 with
Retry-After instead of growing the queue (a hub of only the ingress here: nothing routes)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from broker._hub import Hub
from tests.conftest import auth, hub_bundles, hub_config, sample

pytestmark = [pytest.mark.integration]


async def test_a_backlog_of_unrouted_submissions_is_answered_503_with_retry_after() -> None:
    config = hub_config()
    hub = Hub(config, only=frozenset({"ingress"}), bundles=hub_bundles())
    await hub.start()
    try:
        assert hub.view is not None
        assert hub.ingress is not None
        already = hub.view.backlog(int(time.time() * 1000))  # other tests' recent submissions may count
        hub.ingress.max_backlog = already + 2
        async with httpx.AsyncClient(base_url=f"http://{config.host}:{config.port}", timeout=30,
                                     headers={**auth(config), "Content-Type": "application/xml"}) as client:
            answers = [await client.post("/v1/submissions", content=sample("plain-goods.xml",
                                                                            reference=f"BP-{uuid.uuid4().hex}"))
                       for _ in range(3)]
            assert [a.status_code for a in answers] == [202, 202, 503]
            refused = answers[2]
            assert refused.headers["retry-after"] == "2"
            assert refused.json()["type"].endswith("/overloaded")
            assert "wait for routing" in refused.json()["detail"]
            hub.ingress.max_backlog = already + 3  # room again (the operator raised the limit, or routing caught up)
            again = await client.post("/v1/submissions", content=sample("plain-goods.xml",
                                                                          reference=f"BP-{uuid.uuid4().hex}"))
            assert again.status_code == 202
    finally:
        await hub.stop()
