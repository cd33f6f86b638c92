"""The notifier's attempts, driven through its timer (``tick``) against real HTTP receivers on localhost.

No Kafka here: the changelog store keeps values in memory and ``tick`` returns the records it would commit,
so the delivery rules (one deadline per attempt, no redirects, the maximum retry age) are seen directly; the
same notifier on the real hub is tested in tests/test_webhooks.py and tests/test_webhook_safety.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from broker._envelope import OutMessage
from broker._webhook_guard import UrlPolicy
from broker._webhook_secrets import SecretBox, load_webhook_key
from broker._webhooks import Delivery, DeliverySettings, Notifier, WebhookRegistry
from bus.memory import MemoryBus
from tests.agency_server import serve
from tests.conftest import poll

DEVELOPMENT = UrlPolicy(allow_private=True, allow_http=True)


def notifier(tmp_path: Path, url: str, **settings: Any) -> Notifier:
    registry = WebhookRegistry(MemoryBus(), SecretBox(load_webhook_key(tmp_path)))
    registry.learn({"trader": "T", "url": url, "secret": "s" * 32, "registered_at": 0})
    return Notifier(bus=MemoryBus(), registry=registry, policy=DEVELOPMENT,
                    settings=DeliverySettings(**settings))


def pending(delivery_id: str, *, created_at: int) -> Delivery:
    response: Any = {"submission_id": "S", "version": 1, "response_version": 1, "response_id": delivery_id,
                     "issued_at": created_at, "received_at": created_at, "agencies": [], "trader": "T"}
    return {"delivery_id": delivery_id, "trader": "T", "response": response, "status": "pending", "attempts": 0,
            "next_at": 0, "last_error": None, "delivered_at": None, "created_at": created_at, "failed_at": None}


async def settled(service: Notifier, delivery_id: str, *, timeout: float) -> dict[str, Any]:
    """Tick until the delivery's record shows an attempt's outcome (or its failure).

    One tick can write a delivery twice (an attempt's outcome, then its failure at the maximum age when the
    clock passed it in between); the changelog keeps the last, and so does this.
    """

    async def written() -> dict[str, Any] | None:
        outputs: list[OutMessage] = list(service.tick(0, int(time.time() * 1000)))
        for out in reversed(outputs):
            value = orjson.loads(out.value or b"{}")
            if value["delivery_id"] == delivery_id and (value["attempts"] or value["status"] != "pending"):
                return dict(value)
        return None

    return await poll(written, timeout=timeout, what=f"an outcome for {delivery_id}")


#: Seconds between the bytes a trickling receiver sends.
TRICKLE_PACE = 0.2

@pytest_asyncio.fixture
async def trickler() -> AsyncIterator[str]:
    """A receiver that starts an answer and then sends one byte of headers every 0.2 s, forever."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while True:
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(TRICKLE_PACE)  # the receiver's behaviour under test, not a wait for a result
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"


async def test_one_deadline_for_the_whole_attempt(tmp_path: Path, trickler: str) -> None:
    """A receiver that keeps sending (so no single read ever times out) is cut at the attempt's deadline."""
    service = notifier(tmp_path, trickler, attempt_seconds=1.0)
    now = int(time.time() * 1000)
    service.store.put("D1", pending("D1", created_at=now), partition=0)
    started = time.monotonic()
    try:
        value = await settled(service, "D1", timeout=10)
    finally:
        await service.close()
    assert value["status"] == "pending"
    assert value["attempts"] == 1
    assert value["last_error"] == "no complete answer within 1 s"
    assert time.monotonic() - started < 5


async def test_redirects_are_not_followed(tmp_path: Path) -> None:
    followed: list[str] = []

    async def elsewhere(request: Request) -> Response:
        followed.append(request.url.path)
        return Response(status_code=204)

    async with serve([Route("/moved", elsewhere, methods=["POST", "GET"])]) as target:
        async def redirect(request: Request) -> Response:
            return RedirectResponse(f"{target}/moved", status_code=307)

        async with serve([Route("/hook", redirect, methods=["POST"])]) as base:
            service = notifier(tmp_path, f"{base}/hook")
            service.store.put("D2", pending("D2", created_at=int(time.time() * 1000)), partition=0)
            try:
                value = await settled(service, "D2", timeout=10)
            finally:
                await service.close()
    assert value["last_error"] == "HTTP 307 (redirects are not followed)"
    assert followed == []


async def test_delivery_older_than_the_maximum_age_is_failed(tmp_path: Path) -> None:
    calls: list[int] = []

    async def receive(request: Request) -> Response:
        calls.append(1)
        return Response(status_code=500)

    async with serve([Route("/hook", receive, methods=["POST"])]) as base:
        service = notifier(tmp_path, f"{base}/hook", max_age_ms=1500)
        now = int(time.time() * 1000)
        service.store.put("D3", pending("D3", created_at=now), partition=0)
        service.store.put("OLD", pending("OLD", created_at=now - 10_000), partition=0)
        try:
            old = await settled(service, "OLD", timeout=5)  # never attempted: given up at once
            assert old["status"] == "failed"
            assert old["last_error"] == "never attempted"

            async def failed() -> dict[str, Any] | None:
                value = await settled(service, "D3", timeout=10)
                return value if value["status"] == "failed" else None

            value = await poll(failed, timeout=20, what="D3 to pass the maximum retry age")
        finally:
            await service.close()
    assert value["last_error"] == "HTTP 500"
    assert value["failed_at"] - now >= 1500
    assert value["attempts"] == len(calls) >= 1
    assert service.store.get("D3") is not None
    assert list(service.store.in_partition(0)) == []  # nothing left to retry


@pytest.mark.parametrize("per_trader", [1, 3])
async def test_a_trader_holds_at_most_its_slots(tmp_path: Path, per_trader: int) -> None:
    release = asyncio.Event()
    inside = [0, 0]  # now, most

    async def hang(request: Request) -> Response:
        inside[0] += 1
        inside[1] = max(inside[1], inside[0])
        await release.wait()
        inside[0] -= 1
        return Response(status_code=204)

    async with serve([Route("/hook", hang, methods=["POST"])]) as base:
        service = notifier(tmp_path, f"{base}/hook", per_trader=per_trader, attempt_seconds=30.0)
        now = int(time.time() * 1000)
        for n in range(per_trader * 3):
            service.store.put(f"H{n}", pending(f"H{n}", created_at=now), partition=0)
        try:
            async def full() -> bool | None:
                service.tick(0, int(time.time() * 1000))
                return True if inside[0] == per_trader else None

            await poll(full, timeout=10, what="the trader's slots to fill")
            service.tick(0, int(time.time() * 1000))
            assert inside[1] == per_trader
        finally:
            release.set()
            await service.close()
