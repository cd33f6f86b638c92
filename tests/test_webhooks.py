"""Trader webhooks on the real Kafka: every release response pushed, signed, retried until acknowledged.

The receivers are real HTTP servers on 127.0.0.1, so this module's hub runs with the development settings
(loopback targets and plain http allowed, given explicitly); the production policy is tested in
tests/test_webhook_safety.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker._auth import DEV_TRADER
from broker._envelope import InMessage, OutMessage
from broker._hub import Hub
from broker._topics import WEBHOOKS
from broker._webhooks import SIGNATURE_HEADER, verify_signature
from bus import existing_partition_counts, read_to_end
from schemas import validate_response_xml
from tests.agency_server import serve
from tests.conftest import bootstrap, hub_bundles, hub_config, poll, publish, sample
from tests.test_security import other_trader

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XML = {"Content-Type": "application/xml"}
#: Attempts of one trader at once in this hub (a hanging receiver holds at most these).
PER_TRADER = 2


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hub() -> AsyncIterator[Hub]:
    running = Hub(hub_config(webhook_allow_private=True, webhook_allow_http=True, webhook_attempt_seconds=60.0,
                             webhook_per_trader=PER_TRADER), bundles=hub_bundles())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def base_url(hub: Hub) -> str:
    return f"http://{hub.config.host}:{hub.config.port}"


async def as_trader(hub: Hub, prefix: str) -> tuple[str, httpx.AsyncClient]:
    name = f"{prefix}-{time.time_ns()}"
    token, _ = await other_trader(hub, name)
    return name, httpx.AsyncClient(base_url=base_url(hub), timeout=30, headers={"Authorization": f"Bearer {token}"})


async def delivery_of(client: httpx.AsyncClient, sid: str, status: str) -> dict[str, Any] | None:
    body = (await client.get(f"/v1/submissions/{sid}")).json()
    found = [d for d in body.get("webhook_deliveries", []) if d["status"] == status]
    return found[0] if found else None


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


async def test_kafka_listener_is_refused_even_in_development(hub: Hub, client: httpx.AsyncClient) -> None:
    kafka = bootstrap().split(",")[0]
    answer = await client.put(f"/v1/webhooks/{DEV_TRADER}", json={"url": f"http://{kafka}/", "secret": "s" * 32})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/webhook-url-refused")
    assert "Kafka listener" in answer.json()["detail"]


async def test_secrets_are_sealed_on_the_topic_and_old_plaintext_records_still_work(hub: Hub) -> None:
    secret = f"sealed-{uuid.uuid4().hex}"
    name, trader = await as_trader(hub, "sealer")
    async with trader:
        answer = await trader.put(f"/v1/webhooks/{name}", json={"url": "http://127.0.0.1:9/h", "secret": secret})
        assert answer.status_code == 200
    records: list[InMessage] = []
    counts = await existing_partition_counts(bootstrap(), [WEBHOOKS])
    await read_to_end(bootstrap(), [(WEBHOOKS, p) for p in range(counts[WEBHOOKS])], records.append)
    mine = [r for r in records if r.key == name.encode()]
    assert len(mine) == 1
    assert mine[0].value is not None
    assert secret.encode() not in mine[0].value
    assert orjson.loads(mine[0].value)["secret_sealed"].startswith("v1:")
    assert hub.webhooks is not None
    hook = hub.webhooks.get(name)
    assert hook is not None
    assert hook["secret"] == secret

    # A registration written before secrets were sealed (plaintext) is still read and used for signing.
    legacy_secret = f"legacy-{uuid.uuid4().hex}"
    received: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    name, trader = await as_trader(hub, "legacy")
    async with serve([Route("/hook", receive, methods=["POST"])]) as base, trader:
        record = {"trader": name, "url": f"{base}/hook", "secret": legacy_secret, "registered_at": 1}
        await publish(OutMessage(topic=WEBHOOKS, key=name.encode(), value=orjson.dumps(record)))

        async def learned() -> bool | None:
            assert hub.webhooks is not None
            return True if hub.webhooks.get(name) is not None else None

        await poll(learned, timeout=30, what="the plaintext registration to be read")
        sid = (await trader.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)).json()[
            "submission_id"]

        async def arrived() -> tuple[dict[str, str], bytes] | None:
            return next(((h, b) for h, b in received if orjson.loads(b)["submission_id"] == sid), None)

        headers, raw = await poll(arrived, timeout=60, what="the delivery signed with the plaintext secret")
    assert verify_signature(legacy_secret, headers[SIGNATURE_HEADER.lower()], raw)


async def huge_answer_server(sent: list[int], total: int) -> asyncio.Server:
    """A raw HTTP receiver that answers 200 with ``total`` bytes, counting what the socket accepted (a server
    framework would buffer or drop writes after the peer left; here each write waits for the kernel)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % total)
            block = b"x" * (1 << 20)
            while sent[0] < total:
                writer.write(block)
                await writer.drain()
                sent[0] += len(block)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the hub hung up: what we wanted
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def test_huge_answer_is_not_read(hub: Hub) -> None:
    """A receiver answering 300 MB: the hub reads a few KB and hangs up; the delivery counts as done."""
    sent = [0]
    total = 300 << 20
    server = await huge_answer_server(sent, total)
    port = server.sockets[0].getsockname()[1]
    name, trader = await as_trader(hub, "huge")
    async with server, trader:
        answer = await trader.put(f"/v1/webhooks/{name}", json={"url": f"http://127.0.0.1:{port}/hook",
                                                                 "secret": "s" * 32})
        assert answer.status_code == 200
        sid = (await trader.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)).json()[
            "submission_id"]
        delivered = await poll(lambda: delivery_of(trader, sid, "delivered"), timeout=60,
                               what="the delivery to a receiver with a huge answer")
    assert delivered["attempts"] == 1
    print(f"\nthe 300 MB receiver could write {sent[0] / (1 << 20):.0f} MiB before the hub hung up")
    assert sent[0] < 32 << 20, f"the receiver could write {sent[0]} bytes: the hub kept reading"


async def test_slow_receiver_of_one_trader_does_not_delay_another(hub: Hub) -> None:
    """Trader A's receiver never answers (its attempts hang until the 60 s deadline); trader B's delivery
    arrives meanwhile as fast as usual: deliveries run off the consume loop, with slots per trader."""
    release = asyncio.Event()
    hanging: list[str] = []
    arrived: dict[str, float] = {}

    async def hang(request: Request) -> Response:
        hanging.append(orjson.loads(await request.body())["submission_id"])
        await release.wait()
        return Response(status_code=204)

    async def quick(request: Request) -> Response:
        arrived.setdefault(orjson.loads(await request.body())["submission_id"], time.monotonic())
        return Response(status_code=204)

    name_a, trader_a = await as_trader(hub, "slow")
    name_b, trader_b = await as_trader(hub, "quick")
    async with (serve([Route("/hook", hang, methods=["POST"])]) as slow_base,
                serve([Route("/hook", quick, methods=["POST"])]) as quick_base, trader_a, trader_b):
        try:
            for name, client, url in ((name_a, trader_a, slow_base), (name_b, trader_b, quick_base)):
                answer = await client.put(f"/v1/webhooks/{name}", json={"url": f"{url}/hook", "secret": "s" * 32})
                assert answer.status_code == 200
            for _ in range(PER_TRADER * 3):
                lodged = await trader_a.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)
                assert lodged.status_code in (200, 201, 202)

            async def a_is_stuck() -> bool | None:
                return True if len(hanging) >= PER_TRADER else None

            await poll(a_is_stuck, timeout=60, what="trader A's receiver to hold its attempts")
            started = time.monotonic()
            sid = (await trader_b.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)).json()[
                "submission_id"]

            async def b_arrived() -> float | None:
                return arrived.get(sid)

            at = await poll(b_arrived, timeout=30, what="trader B's delivery while A's receiver hangs")
            latency = at - started
            print(f"\ntrader B's delivery {latency:.2f} s after lodging, while trader A's receiver hangs")
            assert not release.is_set()
            assert len(hanging) == PER_TRADER, "A's attempts are bounded by its own slots"
            assert latency < 20, "B waited for A's receiver"
            recorded = await poll(lambda: delivery_of(trader_b, sid, "delivered"), timeout=30,
                                  what="B's delivery recorded as delivered")
            assert recorded["attempts"] == 1
        finally:
            release.set()
