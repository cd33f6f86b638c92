"""Trader webhooks on the real Kafka: every release response pushed, signed, retried until acknowledged."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker._auth import DEV_TRADER
from broker._webhooks import SIGNATURE_HEADER, verify_signature
from schemas import validate_response_xml
from tests.agency_server import serve
from tests.conftest import poll, sample

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_release_response_reaches_webhook_after_failures(client: httpx.AsyncClient) -> None:
    secret = uuid.uuid4().hex
    received: list[tuple[dict[str, str], bytes]] = []
    failures_left = [2]

    async def receive(request: Request) -> Response:
        body = await request.body()
        if failures_left[0] > 0:
            failures_left[0] -= 1
            return Response(status_code=503)
        received.append((dict(request.headers), body))
        return Response(status_code=204)

    async with serve([Route("/hook", receive, methods=["POST"])]) as base:
        body = sample("branded-ipr.xml")
        registered = await client.put(f"/v1/webhooks/{DEV_TRADER}", json={"url": f"{base}/hook", "secret": secret})
        assert registered.status_code == 200
        sid = (await client.post("/v1/submissions", content=body,
                                 headers={"Content-Type": "application/xml"})).json()["submission_id"]

        async def delivered() -> list[dict[str, Any]] | None:
            mine = [orjson.loads(b) for h, b in received if orjson.loads(b)["submission_id"] == sid]
            return mine or None

        deliveries = await poll(delivered, timeout=60, what="the webhook delivery")
    assert failures_left == [0]
    assert len(deliveries) == 1
    headers, raw = next((h, b) for h, b in received if orjson.loads(b)["submission_id"] == sid)
    assert verify_signature(secret, headers[SIGNATURE_HEADER.lower()], raw)
    assert deliveries[0]["response"]["outcome"] == "HOLD"
    validate_response_xml(deliveries[0]["wco_response_xml"].encode())
    assert "<FunctionCode>05</FunctionCode>" in deliveries[0]["wco_response_xml"]
    assert headers["nsw-delivery-id"] == deliveries[0]["delivery_id"]


async def test_bad_registration_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.put(f"/v1/webhooks/{DEV_TRADER}", json={"url": "ftp://x", "secret": "short"})
    assert answer.status_code == 422


async def test_registration_for_another_trader_is_forbidden(client: httpx.AsyncClient) -> None:
    answer = await client.put("/v1/webhooks/someone-else", json={"url": "https://x.example/h", "secret": "s" * 32})
    assert answer.status_code == 403
