"""Trader notification: every release response pushed to the trader's webhook, signed, until acknowledged.

- Registration: ``PUT /v1/webhooks/{trader}`` with ``{"url", "secret"}`` by that trader (its API key).
  Registrations live in the compacted topic ``nsw.webhooks``.
- Delivery: the notifier consumes ``nsw.responses`` and records a pending delivery per response in
  the changelog ``nsw.webhook.deliveries`` (same transaction as its offsets); a timer per partition
  POSTs due deliveries and retries with exponential backoff and jitter (capped at 10 minutes) until
  the receiver answers 2xx. Delivery is at least once: receivers deduplicate by ``NSW-Delivery-Id``.
- Signature: ``NSW-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypedDict

import httpx
import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, InMessage, OutMessage, decode
from broker._kafka import ProcessorSpec, Producer
from broker._problems import problem
from broker._signing import ResponseSigner
from broker._state import ChangelogStore
from broker._tail import FollowedTail
from broker._topics import DLQ, RESPONSES, WEBHOOK_DELIVERIES, WEBHOOKS
from broker._view import render_response
from broker.errors import MessageError
from schemas import ReleaseResponse

log = structlog.get_logger("nsw.webhooks")

SIGNATURE_HEADER: Final = "NSW-Signature"
DELIVERY_HEADER: Final = "NSW-Delivery-Id"
MAX_BACKOFF_MS: Final = 10 * 60 * 1000
FIRST_BACKOFF_MS: Final = 500
ATTEMPT_TIMEOUT: Final = httpx.Timeout(5.0, connect=2.0)
MAX_PARALLEL: Final = 32
#: Webhook bodies kept for retries (about 10 KB each).
MAX_KEPT_BODIES: Final = 10_000


class Webhook(TypedDict):
    trader: str
    url: str
    secret: str
    registered_at: int


class Delivery(TypedDict):
    delivery_id: str
    trader: str
    response: ReleaseResponse
    status: str  # pending | delivered
    attempts: int
    next_at: int
    last_error: str | None
    delivered_at: int | None


def sign(secret: str, body: bytes, *, now: int | None = None) -> str:
    stamp = int(time.time()) if now is None else now
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance: int = 300, now: int | None = None) -> bool:
    """What a trader's receiver does: recompute the HMAC and refuse stale timestamps (replays)."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff_ms(attempts: int) -> int:
    """Exponential backoff with full jitter after ``attempts`` failed attempts."""
    cap = min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** max(attempts - 1, 0))
    return int(cap / 2 + random.uniform(0, cap / 2))  # noqa: S311 - jitter, not security


def payload(delivery: Delivery, *, xml: Callable[[ReleaseResponse], bytes] | None,
            signer: ResponseSigner | None = None) -> bytes:
    response = delivery["response"]
    rendered = render_response(response)
    body: dict[str, Any] = {
        "event": "release-response",
        "delivery_id": delivery["delivery_id"],
        "submission_id": response["submission_id"],
        "version": response["version"],
        "response_version": response["response_version"],
        "response": rendered,
    }
    if signer is not None:
        body["response_jws"] = signer.sign(rendered)
    if xml is not None:
        body["wco_response_xml"] = xml(response).decode("utf-8")
    return orjson.dumps(body)


class WebhookRegistry:
    """Registrations by trader, followed from ``nsw.webhooks`` (every instance sees all of them)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._hooks: dict[str, Webhook] = {}
        #: Follows ``nsw.webhooks``; a malformed record is reported and skipped (broker/_tail.py).
        self.tail = FollowedTail(name="webhook-registry", bootstrap=bootstrap, topics=(WEBHOOKS,),
                                 apply=self.apply)

    def get(self, trader: str) -> Webhook | None:
        return self._hooks.get(trader)

    def learn(self, hook: Webhook) -> None:
        self._hooks[hook["trader"]] = hook

    def apply(self, message: InMessage) -> None:
        hook = webhook_from_record(message)
        if hook is not None:
            self.learn(hook)

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()


def webhook_from_record(message: InMessage) -> Webhook | None:
    """The registration in a record of ``nsw.webhooks`` (None for a tombstone); MessageError when the record
    is not one, so that the reader reports and skips it and no half-read registration replaces a good one."""
    if not message.value:
        return None
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        raise MessageError(f"a webhook registration is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise MessageError(f"a webhook registration is a JSON object, not {type(value).__name__}")
    wrong = [name for name in ("trader", "url") if not isinstance(value.get(name), str) or not value[name]]
    if not wrong and message.key is not None and message.key != value["trader"].encode():
        wrong.append("trader (not the record's key)")
    if wrong:
        raise MessageError(f"a webhook registration with missing or malformed fields: {', '.join(wrong)}")
    return value  # type: ignore[return-value]


def registration_routes(registry: WebhookRegistry, producer: Producer) -> list[Route]:
    async def put(request: Request) -> Response:
        trader = request.path_params["trader"]
        if request.scope.get("nsw.trader") != trader:
            return problem("forbidden", detail="a trader may register a webhook only for itself")
        try:
            body = orjson.loads(await request.body())
            url, secret = body["url"], body["secret"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return problem("bad-webhook", detail='send JSON {"url": "https://...", "secret": "..."}')
        url_ok = isinstance(url, str) and url.startswith(("http://", "https://"))
        if not url_ok or not isinstance(secret, str) or len(secret) < 16:
            return problem("bad-webhook", detail="url must be http(s) and secret at least 16 characters")
        hook: Webhook = {"trader": trader, "url": url, "secret": secret, "registered_at": int(time.time() * 1000)}
        await producer.send(OutMessage(topic=WEBHOOKS, key=trader.encode(), value=orjson.dumps(hook),
                                       headers=((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),)))
        registry.learn(hook)
        return Response(orjson.dumps({"trader": trader, "url": url}), media_type="application/json")

    async def get(request: Request) -> Response:
        if request.scope.get("nsw.trader") != request.path_params["trader"]:
            return problem("forbidden", detail="a trader may read only its own webhook")
        hook = registry.get(request.path_params["trader"])
        if hook is None:
            return problem("not-found", detail="no webhook registered for this trader")
        return Response(orjson.dumps({"trader": hook["trader"], "url": hook["url"],
                                      "registered_at": hook["registered_at"]}), media_type="application/json")

    return [Route("/v1/webhooks/{trader}", put, methods=["PUT"]), Route("/v1/webhooks/{trader}", get, methods=["GET"])]


class Notifier:
    def __init__(self, *, bootstrap: str, registry: WebhookRegistry,
                 xml: Callable[[ReleaseResponse], bytes] | None = None, signer: ResponseSigner | None = None) -> None:
        self._registry = registry
        self._xml = xml
        self._signer = signer
        self.store: ChangelogStore[Delivery] = ChangelogStore(bootstrap=bootstrap, topic=WEBHOOK_DELIVERIES,
                                                              name="notifier",
                                                              active=lambda delivery: delivery["status"] == "pending")
        self._client = httpx.AsyncClient(timeout=ATTEMPT_TIMEOUT, follow_redirects=False)
        self._limit = asyncio.Semaphore(MAX_PARALLEL)
        #: Bodies of deliveries still being retried (the XML and the signature are made once, not per try).
        self._bodies: dict[str, bytes] = {}

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        await self.store.restore({p for _, p in assigned})

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        response: ReleaseResponse = decode(message, "ReleaseResponse")  # type: ignore[assignment]
        trader = response.get("trader", "anonymous")
        if self._registry.get(trader) is None or self.store.get(response["response_id"]) is not None:
            return []
        delivery: Delivery = {
            "delivery_id": response["response_id"], "trader": trader, "response": response, "status": "pending",
            "attempts": 0, "next_at": 0, "last_error": None, "delivered_at": None,
        }
        return [self.store.put(delivery["delivery_id"], delivery, partition=message.partition)]

    async def tick(self, partition: int, now: int) -> Sequence[OutMessage]:
        due = [d for _, d in self.store.in_partition(partition) if d["status"] == "pending" and d["next_at"] <= now]
        if not due:
            return []
        await asyncio.gather(*(self._attempt(d) for d in due))
        return [self.store.put(d["delivery_id"], d, partition=partition) for d in due]

    async def _attempt(self, delivery: Delivery) -> None:
        hook = self._registry.get(delivery["trader"])
        now = int(time.time() * 1000)
        delivery["attempts"] += 1
        if hook is None:
            delivery["last_error"] = "no webhook registered"
            delivery["next_at"] = now + backoff_ms(delivery["attempts"])
            return
        body = self._bodies.get(delivery["delivery_id"])
        if body is None:
            body = payload(delivery, xml=self._xml, signer=self._signer)
            if len(self._bodies) >= MAX_KEPT_BODIES:
                self._bodies.pop(next(iter(self._bodies)))  # the oldest: rebuilt if it is tried again
            self._bodies[delivery["delivery_id"]] = body
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(hook["secret"], body),
                   DELIVERY_HEADER: delivery["delivery_id"], "NSW-Event": "release-response"}
        async with self._limit:
            try:
                answer = await self._client.post(hook["url"], content=body, headers=headers)
                ok, error = 200 <= answer.status_code < 300, f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                ok, error = False, f"{exc.__class__.__name__}: {exc}"[:300]
        if ok:
            self._bodies.pop(delivery["delivery_id"], None)
            delivery["status"], delivery["delivered_at"], delivery["last_error"] = "delivered", now, None
            log.info("webhook_delivered", delivery_id=delivery["delivery_id"], attempts=delivery["attempts"])
        else:
            delivery["last_error"], delivery["next_at"] = error, now + backoff_ms(delivery["attempts"])
            log.info("webhook_retry", delivery_id=delivery["delivery_id"], attempts=delivery["attempts"], error=error)

    async def close(self) -> None:
        await self._client.aclose()


def notifier_spec(notifier: Notifier) -> ProcessorSpec:
    return ProcessorSpec(
        service="notifier",
        group_id="nsw-notifier",
        topics=(RESPONSES,),
        transactional_prefix="nsw-notifier",
        handler=notifier.handle,
        dlq=DLQ,
        on_assign=notifier.on_assign,
        on_tick=notifier.tick,
        tick_seconds=0.25,
        latest_only=frozenset({WEBHOOK_DELIVERIES}),
    )
