"""Trader notification: every release response pushed to the trader's webhook, signed, until acknowledged.

- Registration: ``PUT /v1/webhooks/{trader}`` with ``{"url", "secret"}`` by that trader (its API key), at most
  16 KB. The URL is checked against the webhook URL policy (``broker._webhook_guard``: https, public
  addresses only, unless development settings say otherwise); a refusal is ``422 webhook-url-refused``
  naming the reason. Registrations live in the compacted topic ``nsw.webhooks``, the secret sealed with the
  hub's webhook key (``broker._webhook_secrets``).
- Delivery: the notifier consumes ``nsw.responses`` and records a pending delivery per response in
  the changelog ``nsw.webhook.deliveries`` (same transaction as its offsets). A timer per partition hands
  due deliveries to attempt tasks (at most ``per_trader`` at once per trader and ``parallel`` in all) and
  writes their outcomes back to the changelog, in a transaction of that partition: the consume and commit
  loop never waits for a receiver, and a slow receiver holds only its own trader's slots. Retries back off
  exponentially with jitter (capped at 10 minutes) until the receiver answers 2xx, or until the delivery
  is older than the maximum retry age: it is then ``failed`` with its last error (status, timeline,
  ``nsw ops webhooks``). Delivery is at least once: receivers deduplicate by ``NSW-Delivery-Id``.
- Each attempt: the URL and every address its host resolves to checked again at connection time, one
  deadline for connect, send and read together, redirects not followed, at most 4 KiB of the answer read.
- Signature: ``NSW-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NotRequired, TypedDict

import httpx
import orjson
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, InMessage, OutMessage, decode
from broker._http import bounded_body
from broker._problems import problem
from broker._signing import ResponseSigner
from broker._state import ChangelogStore
from broker._tail import FollowedTail
from broker._topics import DLQ, RESPONSES, WEBHOOK_DELIVERIES, WEBHOOKS
from broker._view import render_response
from broker._webhook_guard import (
    Resolver,
    UrlPolicy,
    WebhookUrlError,
    check_url,
    default_port,
    guarded_transport,
    resolve_checked,
    system_resolver,
)
from broker._webhook_secrets import SecretBox, WebhookKeyError
from broker.errors import MessageError, TransportError
from bus import Bus, ProcessorSpec, Publisher
from schemas import ReleaseResponse

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "Delivery",
    "DeliverySettings",
    "Notifier",
    "Webhook",
    "WebhookKeyError",
    "WebhookRegistry",
    "backoff_ms",
    "hook_record",
    "notifier_spec",
    "payload",
    "read_hook",
    "registration_routes",
    "sign",
    "verify_signature",
]

log = structlog.get_logger("nsw.webhooks")

SIGNATURE_HEADER: Final = "NSW-Signature"
DELIVERY_HEADER: Final = "NSW-Delivery-Id"
MAX_BACKOFF_MS: Final = 10 * 60 * 1000
FIRST_BACKOFF_MS: Final = 500
#: Webhook bodies kept for retries (about 10 KB each).
MAX_KEPT_BODIES: Final = 10_000
#: Registration bodies, secrets.
MAX_REGISTRATION_BYTES: Final = 16 * 1024
MIN_SECRET: Final = 16
MAX_SECRET: Final = 256
#: Bytes of a receiver's answer read at most (the rest is never read: the connection is closed).
MAX_ANSWER_BYTES: Final = 4096
#: Attempts waiting for a slot, per trader (times per_trader) and in all (times parallel).
QUEUE_FACTOR: Final = 4


class Webhook(TypedDict):
    trader: str
    url: str
    secret: str  # in memory only: the topic holds it sealed
    registered_at: int


class Delivery(TypedDict):
    delivery_id: str
    trader: str
    response: ReleaseResponse
    status: str  # pending | delivered | failed
    attempts: int
    next_at: int
    last_error: str | None
    delivered_at: int | None
    created_at: NotRequired[int]
    failed_at: NotRequired[int | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySettings:
    """How deliveries are attempted (HubConfig's ``webhook_*`` fields)."""

    attempt_seconds: float = 10.0
    max_age_ms: int = 24 * 3600 * 1000
    per_trader: int = 4
    parallel: int = 64
    #: Bounded memory (broker/_state.py): a settled delivery (delivered or failed) leaves memory this many
    #: seconds after it settled, or sooner beyond ``max_settled`` of them (HubConfig's ``state_*`` fields);
    #: None for both: every delivery stays in memory.
    retain_seconds: float | None = None
    max_settled: int | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    error: str | None
    at: int


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


def hook_record(hook: Webhook, box: SecretBox) -> bytes:
    """The ``nsw.webhooks`` record of ``hook``: the secret sealed, never in plaintext."""
    return orjson.dumps({"trader": hook["trader"], "url": hook["url"], "registered_at": hook["registered_at"],
                         "secret_sealed": box.seal(hook["secret"], trader=hook["trader"])})


def read_hook(raw: bytes, box: SecretBox) -> Webhook:
    """A registration from its record (sealed, or plaintext as written before encryption); ValueError if bad."""
    record = orjson.loads(raw)
    if not isinstance(record, dict):
        raise MessageError("a webhook record is a JSON object")
    trader, url = record.get("trader"), record.get("url")
    if not isinstance(trader, str) or not isinstance(url, str):
        raise MessageError("a webhook record names a trader and a url")
    sealed = record.get("secret_sealed")
    secret = box.open(sealed, trader=trader) if isinstance(sealed, str) else record.get("secret")
    if not isinstance(secret, str):
        raise MessageError("a webhook record carries a secret")
    return {"trader": trader, "url": url, "secret": secret, "registered_at": int(record.get("registered_at", 0))}


class WebhookRegistry:
    """Registrations by trader, followed from ``nsw.webhooks`` (every instance sees all of them)."""

    def __init__(self, bus: Bus, box: SecretBox) -> None:
        self._bus = bus
        self.box = box
        self._hooks: dict[str, Webhook] = {}
        #: Follows ``nsw.webhooks``; a malformed record is reported and skipped (broker/_tail.py).
        self.tail = FollowedTail(name="webhook-registry", bus=bus, topics=(WEBHOOKS,),
                                 apply=self.apply)
        self.skipped = 0

    def get(self, trader: str) -> Webhook | None:
        return self._hooks.get(trader)

    def learn(self, hook: Webhook) -> None:
        self._hooks[hook["trader"]] = hook

    def apply(self, message: InMessage) -> None:
        """One record of the topic; a record that cannot be read is logged, counted and skipped."""
        if not message.value:
            if message.key:
                self._hooks.pop(message.key.decode(errors="replace"), None)
            return
        try:
            hook = read_hook(message.value, self.box)
        except WebhookKeyError as exc:  # sealed under another hub key: not ours to read, not a bad record
            self.skipped += 1
            log.warning("webhook_record_skipped", offset=message.offset, error=str(exc)[:200])
            return
        except (ValueError, TypeError) as exc:  # malformed: reported, copied to the DLQ and skipped by the tail
            raise MessageError(f"a webhook registration cannot be read ({exc})"[:300]) from None
        if message.key is not None and message.key != hook["trader"].encode():
            raise MessageError("a webhook registration whose trader is not the record's key")
        self.learn(hook)

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()


def registration_routes(registry: WebhookRegistry, producer: Publisher, *, policy: UrlPolicy,
                        resolver: Resolver = system_resolver) -> list[Route]:
    async def put(request: Request) -> Response:
        trader = request.path_params["trader"]
        if request.scope.get("nsw.trader") != trader:
            return problem("forbidden", detail="a trader may register a webhook only for itself")
        try:
            raw = await bounded_body(request, MAX_REGISTRATION_BYTES)
        except ClientDisconnect:
            return problem("bad-webhook", detail="the body was not received whole")
        if raw is None:
            return problem("too-large", detail=f"a webhook registration has at most {MAX_REGISTRATION_BYTES} bytes")
        try:
            body = orjson.loads(raw)
            url, secret = body["url"], body["secret"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return problem("bad-webhook", detail='send JSON {"url": "https://...", "secret": "..."}')
        if not isinstance(url, str) or not isinstance(secret, str):
            return problem("bad-webhook", detail="url and secret are strings")
        if not MIN_SECRET <= len(secret) <= MAX_SECRET:
            return problem("bad-webhook", detail=f"the secret has {MIN_SECRET} to {MAX_SECRET} characters")
        try:
            parsed = check_url(url, policy)
            await resolve_checked(parsed.host, default_port(parsed), policy, resolver)
        except WebhookUrlError as exc:
            log.info("webhook_refused", trader=trader, reason=str(exc))
            return problem("webhook-url-refused", detail=str(exc))
        hook: Webhook = {"trader": trader, "url": url, "secret": secret, "registered_at": int(time.time() * 1000)}
        try:
            await producer.send(OutMessage(topic=WEBHOOKS, key=trader.encode(), value=hook_record(hook, registry.box),
                                           headers=((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),)))
        except TransportError as exc:
            log.warning("webhook_not_registered", trader=trader, error=str(exc)[:200])
            return problem("unavailable", detail="Kafka did not acknowledge the registration; nothing was changed",
                           headers={"Retry-After": "5"})
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


def _created_at(delivery: Delivery) -> int:
    """When the delivery began (records written before the field: when the response was issued)."""
    created = delivery.get("created_at")
    return created if created is not None else int(delivery["response"].get("issued_at", 0))


class Notifier:
    def __init__(self, *, bus: Bus, registry: WebhookRegistry, policy: UrlPolicy | None = None,
                 settings: DeliverySettings | None = None, xml: Callable[[ReleaseResponse], bytes] | None = None,
                 signer: ResponseSigner | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._xml = xml
        self._signer = signer
        self._policy = policy if policy is not None else UrlPolicy()
        self.settings = settings if settings is not None else DeliverySettings()
        self.store: ChangelogStore[Delivery] = ChangelogStore(bus=bus, topic=WEBHOOK_DELIVERIES,
                                                              name="notifier",
                                                              active=lambda delivery: delivery["status"] == "pending",
                                                              retain_seconds=self.settings.retain_seconds,
                                                              max_inactive=self.settings.max_settled, clock=clock)
        self._client = httpx.AsyncClient(
            transport=transport if transport is not None else guarded_transport(
                self._policy, max_connections=self.settings.parallel),
            timeout=httpx.Timeout(self.settings.attempt_seconds), follow_redirects=False, trust_env=False)
        self._all = asyncio.Semaphore(self.settings.parallel)
        self._per_trader: dict[str, asyncio.Semaphore] = {}
        #: Attempt tasks by delivery id, and how many each trader has (running or waiting for a slot).
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._queued: dict[str, int] = {}
        #: Finished attempts per partition, written to the changelog by that partition's next tick.
        self._outcomes: dict[int, list[tuple[str, _Outcome]]] = {}
        #: Bodies of deliveries still being retried (the XML and the signature are made once, not per try).
        self._bodies: dict[str, bytes] = {}

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        await self.store.restore({p for _, p in assigned})

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        response: ReleaseResponse = decode(message, "ReleaseResponse")  # type: ignore[assignment]
        trader = response.get("trader", "anonymous")
        did = response["response_id"]
        if self._registry.get(trader) is None or self.store.get(did) is not None or self.store.needs_load(did):
            return []  # known already: pending, settled, or settled and evicted (its record is in the changelog)
        delivery: Delivery = {
            "delivery_id": response["response_id"], "trader": trader, "response": response, "status": "pending",
            "attempts": 0, "next_at": 0, "last_error": None, "delivered_at": None,
            "created_at": int(time.time() * 1000), "failed_at": None,
        }
        return [self.store.put(delivery["delivery_id"], delivery, partition=message.partition)]

    def tick(self, partition: int, now: int) -> Sequence[OutMessage]:
        """Outcomes of finished attempts into the changelog, expired deliveries failed, due ones started.

        Never waits for a receiver: attempts run in their own tasks, and this returns at once.
        """
        outputs = [self._record(did, outcome, partition) for did, outcome in self._outcomes.pop(partition, [])]
        settings = self.settings
        for did, delivery in self.store.in_partition(partition):
            if did in self._in_flight or delivery["status"] != "pending":
                continue
            if now - _created_at(delivery) >= settings.max_age_ms:
                outputs.append(self._fail(delivery, partition, now))
            elif delivery["next_at"] <= now and self._has_room(delivery["trader"]):
                self._start(delivery, partition)
        return [out for out in outputs if out is not None]

    def _has_room(self, trader: str) -> bool:
        settings = self.settings
        return (self._queued.get(trader, 0) < settings.per_trader * QUEUE_FACTOR
                and len(self._in_flight) < settings.parallel * QUEUE_FACTOR)

    def _start(self, delivery: Delivery, partition: int) -> None:
        did, trader = delivery["delivery_id"], delivery["trader"]
        self._queued[trader] = self._queued.get(trader, 0) + 1
        task = asyncio.create_task(self._attempt(delivery, partition), name=f"webhook-{did}")
        self._in_flight[did] = task

        def finished(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(did, None)
            left = self._queued.get(trader, 1) - 1
            if left > 0:
                self._queued[trader] = left
            else:  # no task of this trader holds or awaits its slots any more
                self._queued.pop(trader, None)
                self._per_trader.pop(trader, None)

        task.add_done_callback(finished)

    def _record(self, did: str, outcome: _Outcome, partition: int) -> OutMessage | None:
        current = self.store.get(did)
        if current is None or current["status"] != "pending":
            return None  # the partition was restored meanwhile, and the delivery settled elsewhere
        delivery: Delivery = {**current, "attempts": current["attempts"] + 1}
        if outcome.ok:
            self._bodies.pop(did, None)
            delivery["status"], delivery["delivered_at"], delivery["last_error"] = "delivered", outcome.at, None
            log.info("webhook_delivered", delivery_id=did, attempts=delivery["attempts"])
        else:
            delivery["last_error"], delivery["next_at"] = outcome.error, outcome.at + backoff_ms(delivery["attempts"])
            log.info("webhook_retry", delivery_id=did, attempts=delivery["attempts"], error=outcome.error)
            if outcome.at - _created_at(delivery) >= self.settings.max_age_ms:
                return self._fail(delivery, partition, outcome.at)
        return self.store.put(did, delivery, partition=partition)

    def _fail(self, delivery: Delivery, partition: int, now: int) -> OutMessage:
        did = delivery["delivery_id"]
        self._bodies.pop(did, None)
        failed: Delivery = {**delivery, "status": "failed", "failed_at": now,
                            "last_error": delivery["last_error"] or "never attempted"}
        log.warning("webhook_failed", delivery_id=did, trader=delivery["trader"], attempts=delivery["attempts"],
                    error=failed["last_error"], max_age_s=self.settings.max_age_ms // 1000)
        return self.store.put(did, failed, partition=partition)

    async def _attempt(self, delivery: Delivery, partition: int) -> None:
        trader = delivery["trader"]
        slots = self._per_trader.get(trader)
        if slots is None:
            slots = self._per_trader[trader] = asyncio.Semaphore(self.settings.per_trader)
        try:
            async with slots, self._all:
                ok, error = await self._post(delivery)
        except Exception as exc:  # noqa: BLE001 - whatever breaks one attempt is that attempt's error, never a crash
            ok, error = False, f"{exc.__class__.__name__}: {exc}"[:300]
        self._outcomes.setdefault(partition, []).append(
            (delivery["delivery_id"], _Outcome(ok=ok, error=error, at=int(time.time() * 1000))))

    async def _post(self, delivery: Delivery) -> tuple[bool, str | None]:
        hook = self._registry.get(delivery["trader"])
        if hook is None:
            return False, "no webhook registered"
        did = delivery["delivery_id"]
        body = self._bodies.get(did)
        if body is None:
            body = payload(delivery, xml=self._xml, signer=self._signer)
            if len(self._bodies) >= MAX_KEPT_BODIES:
                self._bodies.pop(next(iter(self._bodies)))  # the oldest: rebuilt if it is tried again
            self._bodies[did] = body
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(hook["secret"], body),
                   DELIVERY_HEADER: did, "NSW-Event": "release-response"}
        seconds = self.settings.attempt_seconds
        try:
            async with asyncio.timeout(seconds):
                check_url(hook["url"], self._policy)  # the policy of today, also for older registrations
                async with self._client.stream("POST", hook["url"], content=body, headers=headers) as answer:
                    read = 0
                    async for chunk in answer.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_ANSWER_BYTES:
                            break  # the rest is never read: closing the stream closes the connection
                    status = answer.status_code
        except TimeoutError:
            return False, f"no complete answer within {seconds:g} s"
        except WebhookUrlError as exc:
            return False, f"refused: {exc}"
        except httpx.HTTPError as exc:
            return False, f"{exc.__class__.__name__}: {exc}"[:300]
        if 200 <= status < 300:
            return True, None
        if 300 <= status < 400:
            return False, f"HTTP {status} (redirects are not followed)"
        return False, f"HTTP {status}"

    async def close(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
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
        # Most responses go to traders without a webhook and produce nothing: their offsets ride on the
        # partition's next transaction (or the timer's), not one transaction per response. Read again after
        # a crash, such a response again produces nothing (or a delivery, if the trader registered since).
        defer_empty=True,
    )

