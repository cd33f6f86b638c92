"""Slow and greedy clients against the running hub (raw sockets, real HTTP, real Kafka): they are cut off
or refused, and an honest trader's submission is accepted meanwhile.

| attack                                                  | expected answer                               |
|---------------------------------------------------------|-----------------------------------------------|
| request head trickled a byte at a time (slowloris)      | 408 problem+json at the head deadline         |
| connection that never sends a byte                      | closed at the head deadline                   |
| request head larger than the limit                      | 431 problem+json                              |
| body trickled a byte at a time                          | 408 problem+json at the body deadline         |
| body trickled to a route that does not read it          | connection cut at the body deadline + grace   |
| more trickling uploads than the hub has in-flight slots | none takes a slot; the honest trader gets 202 |
| one trader's uploads beyond its concurrency limit       | 429 too-many-in-flight with Retry-After       |
| a trader over the default rate (50/s, burst 100)        | 429 rate-limited with Retry-After             |
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from broker._config import HubConfig
from broker._http import BODY_GRACE_SECONDS
from broker._hub import Hub
from tests.conftest import auth, hub_bundles, hub_config, poll, sample
from tests.test_security import other_trader

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

HEAD_TIMEOUT = 1.5
BODY_TIMEOUT = 3.0
MAX_IN_FLIGHT = 4
PER_TRADER = 3
XML = {"Content-Type": "application/xml"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hub() -> AsyncIterator[Hub]:
    config = hub_config(header_timeout=HEAD_TIMEOUT, body_timeout=BODY_TIMEOUT, max_header_bytes=8192,
                        max_in_flight=MAX_IN_FLIGHT, max_in_flight_per_trader=PER_TRADER, max_backlog=1_000_000)
    running = Hub(config, only=frozenset({"ingress"}), bundles=hub_bundles())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def mallory(hub: Hub) -> str:
    """A second trader's token: the attacker, so that per-trader limits do not hide the global ones."""
    token, _ = await other_trader(hub, "mallory")
    return token


async def honest_submission(hub: Hub) -> float:
    """Seconds the development trader waited for its 202."""
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30,
                                 headers={**auth(hub.config), **XML}) as client:
        started = time.monotonic()
        answer = await client.post("/v1/submissions", content=sample("plain-goods.xml"))
        took = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    return took


class RawClient:
    """One TCP connection speaking HTTP/1.1 by hand, so it can be as slow as an attacker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, hub: Hub) -> RawClient:
        reader, writer = await asyncio.open_connection(hub.config.host, hub.config.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> bool:
        """False once the hub has closed the connection."""
        if self.writer.is_closing() or self.reader.at_eof():
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            return False
        return True

    async def trickle(self, data: bytes, *, every: float = 0.1) -> None:
        """A byte every ``every`` seconds until done or cut off."""
        for byte in data:
            if not await self.send(bytes([byte])):
                return
            await asyncio.sleep(every)  # the attack itself: the pace of a slow client, not a wait for a result

    async def answer(self, *, within: float) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the hub's answer (read until it closes or the body is complete)."""
        async with asyncio.timeout(within):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def closed(self, *, within: float) -> bool:
        """Whether the hub ends the connection within ``within`` seconds: a close, or a reset (the kernel answers
        a close with RST when the client's bytes are still unread, as they are while a body trickles in)."""
        async with asyncio.timeout(within):
            try:
                return await self.reader.read() == b""
            except ConnectionResetError:
                return True

    def close(self) -> None:
        self.writer.close()


def _problem(status: int, headers: dict[str, str], body: bytes, expected: int, slug: str) -> dict[str, Any]:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = orjson.loads(body)
    assert problem["type"] == f"https://nsw-broker.dev/problems/{slug}"
    assert problem["status"] == expected
    return problem


def _head(token: str, *, length: int, path: str = "/v1/submissions") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/xml\r\nContent-Length: {length}\r\n\r\n").encode()


async def test_a_trickled_request_head_gets_408_at_the_head_deadline(hub: Hub, mallory: str) -> None:
    raw = await RawClient.open(hub)
    started = time.monotonic()
    trickling = asyncio.create_task(raw.trickle(_head(mallory, length=10) * 10))
    try:
        honest = await honest_submission(hub)  # while the head trickles
        status, headers, body = await raw.answer(within=HEAD_TIMEOUT + 5)
        took = time.monotonic() - started
    finally:
        trickling.cancel()
        raw.close()
    problem = _problem(status, headers, body, 408, "request-timeout")
    assert "request head" in problem["detail"]
    assert HEAD_TIMEOUT - 0.2 < took < HEAD_TIMEOUT + 3
    assert honest < 2.0


async def test_a_silent_connection_is_closed_at_the_head_deadline(hub: Hub) -> None:
    raw = await RawClient.open(hub)
    try:
        assert await raw.closed(within=HEAD_TIMEOUT + 5)
    finally:
        raw.close()


async def test_a_kept_alive_connection_gets_a_fresh_head_deadline_per_request(hub: Hub, mallory: str) -> None:
    raw = await RawClient.open(hub)
    try:
        get = f"GET /healthz HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {mallory}\r\n\r\n".encode()
        assert await raw.send(get)
        status, _, _ = await raw.answer(within=5)
        assert status == 200
        assert await raw.send(get[:10])  # the second request starts, and stalls
        status, headers, body = await raw.answer(within=HEAD_TIMEOUT + 5)
    finally:
        raw.close()
    _problem(status, headers, body, 408, "request-timeout")


async def test_a_request_head_over_the_limit_gets_431(hub: Hub, mallory: str) -> None:
    raw = await RawClient.open(hub)
    try:
        assert await raw.send(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
        for n in range(200):
            if not await raw.send(f"X-Padding-{n}: {'p' * 100}\r\n".encode()):
                break
        status, headers, body = await raw.answer(within=5)
    finally:
        raw.close()
    problem = _problem(status, headers, body, 431, "header-too-large")
    assert "8192" in problem["detail"]


async def test_a_trickled_body_gets_408_at_the_body_deadline(hub: Hub, mallory: str) -> None:
    body = sample("plain-goods.xml")
    raw = await RawClient.open(hub)
    started = time.monotonic()
    assert await raw.send(_head(mallory, length=len(body)))
    trickling = asyncio.create_task(raw.trickle(body))
    try:
        honest = await honest_submission(hub)
        status, headers, answer = await raw.answer(within=BODY_TIMEOUT + 5)
        took = time.monotonic() - started
    finally:
        trickling.cancel()
        raw.close()
    problem = _problem(status, headers, answer, 408, "request-timeout")
    assert "body" in problem["detail"]
    assert BODY_TIMEOUT - 0.2 < took < BODY_TIMEOUT + 3
    assert honest < 2.0


async def test_a_trickled_body_on_any_route_is_cut_at_the_protocol_deadline(hub: Hub, mallory: str) -> None:
    """The backstop below the application: a route that does not time its body out itself (here one that
    answers without reading it) still loses the connection once the body deadline and its grace are over."""
    raw = await RawClient.open(hub)
    started = time.monotonic()
    assert await raw.send(_head(mallory, length=10_000, path="/healthz"))
    trickling = asyncio.create_task(raw.trickle(b"x" * 10_000))
    try:
        status, _, _ = await raw.answer(within=5)
        assert status == 405  # answered at once; the body keeps coming
        assert await raw.closed(within=BODY_TIMEOUT + BODY_GRACE_SECONDS + 5)
        took = time.monotonic() - started
    finally:
        trickling.cancel()
        raw.close()
    assert took > BODY_TIMEOUT + BODY_GRACE_SECONDS - 0.5


async def test_trickling_uploads_take_no_in_flight_slot(hub: Hub, mallory: str) -> None:
    """More slow uploads than the hub has slots (from several connections of one trader, up to its limit,
    and from the development trader itself): the honest submission is still accepted at once."""
    body = sample("plain-goods.xml")
    token = auth(hub.config)["Authorization"].removeprefix("Bearer ")
    uploads = [await RawClient.open(hub) for _ in range(PER_TRADER + PER_TRADER - 1)]
    tokens = [mallory] * PER_TRADER + [token] * (PER_TRADER - 1)
    assert len(uploads) > MAX_IN_FLIGHT
    try:
        for raw, who in zip(uploads, tokens, strict=True):
            assert await raw.send(_head(who, length=len(body)) + body[:20])
        assert hub.ingress is not None

        async def all_reading() -> bool | None:
            assert hub.ingress is not None
            return True if sum(hub.ingress._per_trader.values()) == len(uploads) else None

        await poll(all_reading, timeout=10, what="every upload to be reading its body")
        assert hub.ingress._in_flight == 0
        honest = await honest_submission(hub)
    finally:
        for raw in uploads:
            raw.close()
    assert honest < 2.0


async def test_a_trader_over_its_concurrency_limit_gets_429(hub: Hub, mallory: str) -> None:
    body = sample("plain-goods.xml")
    uploads = [await RawClient.open(hub) for _ in range(PER_TRADER)]
    try:
        for raw in uploads:
            assert await raw.send(_head(mallory, length=len(body)) + body[:20])

        async def all_open() -> bool | None:
            assert hub.ingress is not None
            return True if hub.ingress._per_trader.get("mallory", 0) == PER_TRADER else None

        await poll(all_open, timeout=10, what="mallory's uploads to be open")
        async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30) as client:
            refused = await client.post("/v1/submissions", content=body,
                                        headers={"Authorization": f"Bearer {mallory}", **XML})
        honest = await honest_submission(hub)  # another trader is not affected
    finally:
        for raw in uploads:
            raw.close()
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://nsw-broker.dev/problems/too-many-in-flight"
    assert refused.headers["retry-after"] == "1"
    assert honest < 2.0


async def test_the_default_rate_limit_is_a_real_one() -> None:
    defaults = HubConfig()
    assert (defaults.rate_limit, defaults.rate_burst) == (50.0, 100.0)
    config = hub_config(rate_limit=defaults.rate_limit, rate_burst=defaults.rate_burst)
    hub = Hub(config, only=frozenset({"ingress"}), bundles=hub_bundles())
    await hub.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://{config.host}:{config.port}", timeout=30,
                                     headers=auth(config)) as client:
            answers = await asyncio.gather(*(client.get("/v1/submissions/none") for _ in range(150)))
    finally:
        with contextlib.suppress(Exception):
            await hub.stop()
    statuses = [a.status_code for a in answers]
    assert statuses.count(404) >= 100  # the burst
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "150 requests at once passed a 50/s limit with a burst of 100"
    assert limited[0].headers["content-type"] == "application/problem+json"
    assert limited[0].json()["type"] == "https://nsw-broker.dev/problems/rate-limited"
    assert int(limited[0].headers["retry-after"]) >= 1
