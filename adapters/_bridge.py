"""HTTP bridge: deliver an agency's requests to its REST system and bring its decisions back.

For each record on ``nsw.agency.<agency>.requests`` the bridge POSTs the agency's JSON message
(``adapters._agency_api``) to ``BridgeConfig.url``:

- 200 with a decision  → the AgencyDecision goes to ``nsw.agency.<agency>.decisions`` in the
  processor's transaction (synchronous agency);
- 202                  → nothing is produced: the request is acknowledged and the agency POSTs
  its decision to the hub's callback endpoint later (``adapters._callback``);
- connect error, timeout, 5xx, 429 → retried here with exponential backoff and full jitter
  (a 429's ``Retry-After`` is honoured) while the per-request budget lasts, then
  :class:`AgencyUnavailable` (retriable): the processor retries the record per its RetryPolicy
  and then dead-letters it with the reason;
- other 4xx            → :class:`AgencyRejected` (not retriable): dead-lettered at once with the
  agency's problem text;
- a 200 whose body breaks the contract → :class:`DecisionFormatError`, dead-lettered at once.

A circuit breaker (``adapters._breaker``) guards the agency: after repeated failures the bridge
fails fast with :class:`CircuitOpen` (an AgencyUnavailable) instead of queueing timeouts; after
``open_seconds`` a probe is let through and, when it succeeds, traffic resumes.

Records of one partition are handled in order, so a slow agency slows its own partition only;
the budget keeps one record well under Kafka's poll interval. Redriving dead letters once the
agency is back: see the README ("HTTP bridge" / "Redriving dead letters").
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
import orjson
import structlog

from adapters._agency_api import agency_message, callback_url, parse_decision
from adapters._breaker import BreakerConfig, CircuitBreaker
from adapters.errors import AdapterConfigError, AgencyRejected, AgencyUnavailable, DecisionFormatError, FieldError
from broker._clock import now_ms
from broker._envelope import InMessage, OutMessage, avro_message, decode
from broker._topics import decisions_topic
from schemas import AgencyDecision, AgencyRequest

log = structlog.get_logger("nsw.bridge")

MAX_PROBLEM_TEXT = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeConfig:
    """How the hub talks to one agency's REST system. Built once at start-up (``from_env``)."""

    agency: str
    url: str
    #: seconds, as in ``httpx.Timeout``
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    write_timeout: float = 5.0
    pool_timeout: float = 2.0
    #: further attempts after the first one, within ``budget`` seconds in all
    retries: int = 3
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    budget: float = 30.0
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    #: the hub's public base URL; the agency message's ``reply_to`` is derived from it
    callback_base_url: str | None = None
    #: extra request headers (e.g. an Authorization the agency requires)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: where synchronous decisions go; default ``nsw.agency.<agency>.decisions``
    output_topic: str | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise AdapterConfigError(f"bridge {self.agency}: url {self.url!r} is not an http(s) URL")
        if min(self.connect_timeout, self.read_timeout, self.write_timeout, self.pool_timeout) <= 0:
            raise AdapterConfigError(f"bridge {self.agency}: timeouts must be > 0")
        if self.retries < 0 or self.backoff_base < 0 or self.backoff_max < self.backoff_base or self.budget <= 0:
            raise AdapterConfigError(
                f"bridge {self.agency}: retries >= 0, 0 <= backoff_base <= backoff_max and budget > 0"
            )

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout, read=self.read_timeout, write=self.write_timeout,
                             pool=self.pool_timeout)

    @property
    def decisions(self) -> str:
        return self.output_topic or decisions_topic(self.agency)

    @property
    def reply_to(self) -> str | None:
        return None if self.callback_base_url is None else callback_url(self.callback_base_url, self.agency)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))] after failed ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _problem_text(response: httpx.Response) -> str:
    """The agency's explanation, short: problem+json ``detail``/``title`` or the start of the body."""
    text = response.text
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("title", "detail") if isinstance(body.get(k), str)]
        if parts:
            text = ": ".join(parts)
    return text.strip()[:MAX_PROBLEM_TEXT] or response.reason_phrase


class _Retry(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, error: AgencyUnavailable, *, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait



class HttpBridge:
    """The adapter handler of an agency in ``http`` mode; callable, so it can be a ProcessorSpec handler.

    One ``httpx.AsyncClient`` per bridge, made on first use; ``aclose`` at shutdown.
    ``transport`` lets tests and tools hand in another httpx transport.
    """

    def __init__(
        self,
        config: BridgeConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.breaker = CircuitBreaker(config.breaker, name=f"bridge-{config.agency}", clock=clock)
        self._transport = transport
        self._clock = clock
        self.now_ms = now_ms
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._client: httpx.AsyncClient | None = None
        self.calls = 0  # HTTP exchanges attempted (a metric; tests read it)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.config.timeout, transport=self._transport, follow_redirects=False,
                headers={"user-agent": "nsw-broker-bridge", **self.config.headers},
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __call__(self, message: InMessage) -> list[OutMessage]:
        return await self.handle(message)

    async def handle(self, message: InMessage) -> list[OutMessage]:
        request: AgencyRequest = decode(message, "AgencyRequest")  # type: ignore[assignment]
        structlog.contextvars.bind_contextvars(
            submission_id=request["submission_id"], version=request["version"], agency=self.config.agency
        )
        started = self._clock()
        body = orjson.dumps(agency_message(request, reply_to=self.config.reply_to))
        try:
            response, attempts = await self._deliver(request["request_id"], body, deadline=started + self.config.budget)
        except AgencyUnavailable as exc:
            log.warning("agency_unavailable", error=str(exc), breaker=self.breaker.state)
            raise
        elapsed_ms = round((self._clock() - started) * 1000)
        if response.status_code == 202 or request.get("kind") == "CANCELLATION":
            log.info("delivered", mode="async", status=response.status_code, attempts=attempts, ms=elapsed_ms)
            return []
        decision = self._decision(request, response)
        log.info("delivered", mode="sync", status=response.status_code, attempts=attempts, ms=elapsed_ms,
                 outcomes=sorted({i["outcome"] for i in decision["items"]}))
        return [avro_message(self.config.decisions, "AgencyDecision", decision)]

    def _decision(self, request: AgencyRequest, response: httpx.Response) -> AgencyDecision:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise DecisionFormatError([FieldError("", "the 200 answer is not JSON")]) from exc
        return parse_decision(
            body, agency=self.config.agency, received_at=self.now_ms(), submission_id=request["submission_id"],
            version=request["version"], sequences={i["sequence"] for i in request["items"]},
            default_id=f"{request['request_id']}:http", request_id=request["request_id"],
        )

    async def _deliver(self, request_id: str, body: bytes, *, deadline: float) -> tuple[httpx.Response, int]:
        """POST until a final answer (2xx or a non-retriable 4xx); AgencyUnavailable when out of tries."""
        attempt = 0
        while True:
            attempt += 1
            self.breaker.acquire()  # CircuitOpen: fail fast, no call
            try:
                return await self._attempt(request_id, body), attempt
            except _Retry as retry:
                error = retry.error
                wait = retry.wait if retry.wait is not None else self.config.backoff(attempt, self._rng)
            if attempt > self.config.retries:
                raise AgencyUnavailable(f"{error} (gave up after {attempt} attempts)",
                                        retry_after=error.retry_after) from error
            if self._clock() + wait >= deadline:
                raise AgencyUnavailable(f"{error} (retry budget of {self.config.budget:g} s spent)",
                                        retry_after=error.retry_after) from error
            log.info("agency_retry", attempt=attempt, wait=round(wait, 3), error=str(error))
            await self._sleep(wait)

    async def _attempt(self, request_id: str, body: bytes) -> httpx.Response:
        """One exchange, classified; httpx's errors become ours here and only here."""
        agency = self.config.agency
        self.calls += 1
        try:
            response = await self._http().post(
                self.config.url, content=body,
                headers={"content-type": "application/json", "accept": "application/json",
                         "idempotency-key": request_id},
            )
        except httpx.TimeoutException as exc:
            self.breaker.record_failure()
            raise _Retry(AgencyUnavailable(f"{agency}: no answer in time ({exc.__class__.__name__})")) from exc
        except httpx.RequestError as exc:
            self.breaker.record_failure()
            raise _Retry(AgencyUnavailable(f"{agency}: cannot reach {self.config.url} ({exc.__class__.__name__})")
                         ) from exc
        except BaseException:
            self.breaker.record_neutral()  # cancelled (shutdown): give a half-open probe slot back
            raise
        status = response.status_code
        if status == 429:
            self.breaker.record_neutral()
            hint = retry_after_seconds(response.headers.get("retry-after"), now=time.time())
            raise _Retry(AgencyUnavailable(f"{agency}: too many requests (429)", retry_after=hint), wait=hint)
        if status >= 500:
            self.breaker.record_failure()
            hint = retry_after_seconds(response.headers.get("retry-after"), now=time.time())
            raise _Retry(AgencyUnavailable(f"{agency}: server error {status}: {_problem_text(response)}",
                                           retry_after=hint))
        self.breaker.record_success()  # the agency is up and answered
        if status in (200, 202):
            return response
        if 400 <= status < 500:
            text = _problem_text(response)
            raise AgencyRejected(f"{agency} refused the request ({status}): {text}", status=status, problem=text)
        raise AgencyRejected(f"{agency}: unexpected answer {status} (expected 200 or 202)", status=status,
                             problem=_problem_text(response))
