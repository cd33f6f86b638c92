"""Every error answer of the running hub is problem+json, the framework's own included; and an
Idempotency-Key is released by every failed exit (5xx, exception, cancellation, client gone).

| request                                          | expected answer                                     |
|--------------------------------------------------|-----------------------------------------------------|
| an unknown path                                  | 404 no-such-resource                                |
| a known path with the wrong method               | 405 method-not-allowed, Allow                       |
| a handler that fails                             | 500 internal-error (no internals in the answer)     |
| the authentication middleware fails              | 500 internal-error                                  |
| bytes that are not HTTP                          | 400 bad-request                                     |
| no credentials, wrong media type, too large      | 401, 415, 413 (problem+json as before)              |
| Idempotency-Key, Kafka away (503)                | the same key is accepted once Kafka is back         |
| Idempotency-Key, the handler fails (500)         | the same key is accepted afterwards                 |
| Idempotency-Key, the request is cancelled        | the key is not left in flight                       |
| Idempotency-Key, the client leaves mid-body      | the key was never taken; the retry is accepted      |
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker._hub import Hub
from broker._idempotency import fingerprint
from broker.errors import TransportError
from tests.conftest import client_of, hub_bundles, hub_config, sample, started
from tests.test_slow_clients import RawClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XML = {"Content-Type": "application/xml"}
PROBLEMS = "https://nsw-broker.dev/problems/"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hub() -> AsyncIterator[Hub]:
    async with started(Hub(hub_config(max_backlog=1_000_000), only=frozenset({"ingress"}),
                           bundles=hub_bundles())) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(hub) as http:
        yield http


def _problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


async def test_an_unknown_path_is_a_problem_404(client: httpx.AsyncClient) -> None:
    body = _problem(await client.get("/v1/nothing-here"), 404, "no-such-resource")
    assert body["instance"] == "/v1/nothing-here"


async def test_a_wrong_method_is_a_problem_405_with_allow(client: httpx.AsyncClient) -> None:
    answer = await client.delete("/v1/submissions")
    _problem(answer, 405, "method-not-allowed")
    assert answer.headers["allow"] == "POST"


async def test_a_failing_handler_is_a_problem_500(hub: Hub, client: httpx.AsyncClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.view is not None

    def broken(submission_id: str) -> None:
        raise RuntimeError("secret internal state")

    monkeypatch.setattr(hub.view, "get", broken)
    answer = await client.get("/v1/submissions/S-anything")
    body = _problem(answer, 500, "internal-error")
    assert "secret" not in answer.text
    assert body["instance"] == "/v1/submissions/S-anything"


async def test_a_failure_outside_the_application_is_a_problem_500(hub: Hub, client: httpx.AsyncClient,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The authentication middleware runs outside Starlette: its failure is answered by the outermost layer."""
    assert hub.view is not None

    def broken(token: str) -> None:
        raise RuntimeError("secret key store state")

    monkeypatch.setattr(hub.view.keys, "authenticate", broken)
    answer = await client.get("/v1/submissions/S-anything")
    _problem(answer, 500, "internal-error")
    assert "secret" not in answer.text


async def test_bytes_that_are_not_http_are_a_problem_400(hub: Hub) -> None:
    raw = await RawClient.open(hub)
    try:
        assert await raw.send(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        status, headers, body = await raw.answer(within=5)
    finally:
        raw.close()
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert httpx.Response(400, content=body).json()["type"] == PROBLEMS + "bad-request"


async def test_the_existing_refusals_stay_problems(hub: Hub, client: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}") as anonymous:
        _problem(await anonymous.get("/v1/submissions/x"), 401, "unauthenticated")
    _problem(await client.post("/v1/submissions", content=b"{}", headers={"Content-Type": "application/json"}),
             415, "unsupported-media-type")
    _problem(await client.post("/v1/submissions", content=b"<" * (hub.config.max_body_bytes + 1), headers=XML),
             413, "too-large")


# --------------------------------------------------------------------------- idempotency keys


def _keyed(key: str) -> dict[str, str]:
    return {**XML, "Idempotency-Key": key}


async def test_a_key_is_released_after_a_503(hub: Hub, client: httpx.AsyncClient,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.producer is not None
    key, body = f"k-{uuid.uuid4().hex}", sample("plain-goods.xml")

    async def away(*args: object) -> None:
        raise TransportError("Kafka is away")

    with monkeypatch.context() as patch:
        patch.setattr(hub.producer, "send", away)
        _problem(await client.post("/v1/submissions", content=body, headers=_keyed(key)), 503, "unavailable")
    again = await client.post("/v1/submissions", content=body, headers=_keyed(key))
    assert again.status_code == 202, again.text


async def test_a_key_is_released_after_an_unexpected_failure(hub: Hub, client: httpx.AsyncClient,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.producer is not None
    key, body = f"k-{uuid.uuid4().hex}", sample("plain-goods.xml")

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr(hub.producer, "send", broken)
        _problem(await client.post("/v1/submissions", content=body, headers=_keyed(key)), 500, "internal-error")
    again = await client.post("/v1/submissions", content=body, headers=_keyed(key))
    assert again.status_code == 202, again.text  # not 409 "still in flight"


async def test_a_key_is_released_when_its_request_is_cancelled(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.producer is not None
    assert hub.ingress is not None
    assert hub.view is not None
    key, body = f"k-{uuid.uuid4().hex}", sample("plain-goods.xml")
    print_ = fingerprint(body, "application/xml")
    sending = asyncio.Event()

    async def hangs(*args: object) -> None:
        sending.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(hub.producer, "send", hangs)
    lodging = asyncio.create_task(hub.ingress._lodge_once("dev-trader", key, "application/xml", body, avro=False))
    await asyncio.wait_for(sending.wait(), 10)
    assert hub.view.idempotency.check("dev-trader", key, print_)[0] == "in-flight"
    lodging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await lodging
    assert hub.view.idempotency.check("dev-trader", key, print_)[0] == "new"


async def test_a_client_leaving_mid_body_takes_no_key(hub: Hub, client: httpx.AsyncClient) -> None:
    key, body = f"k-{uuid.uuid4().hex}", sample("plain-goods.xml")
    token = client.headers["authorization"].removeprefix("Bearer ")
    raw = await RawClient.open(hub)
    head = (f"POST /v1/submissions HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/xml\r\nIdempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n")
    assert await raw.send(head.encode() + body[: len(body) // 2])
    raw.close()
    again = await client.post("/v1/submissions", content=body, headers=_keyed(key))
    assert again.status_code == 202, again.text
