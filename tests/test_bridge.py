"""The HTTP bridge against a real agency HTTP server (uvicorn, localhost) that is fast, slow,
failing, rate-limiting, refusing, down, or answering asynchronously through the callback endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters import (
    AgencyModes,
    AgencyRejected,
    AgencyUnavailable,
    BreakerConfig,
    BreakerState,
    BridgeConfig,
    CircuitBreaker,
    CircuitOpen,
    DecisionFormatError,
    HttpBridge,
    adapter_handler,
    agency_message,
    callback_routes,
    close_handler,
    parse_decision,
)
from adapters.errors import AdapterConfigError
from broker._aggregate import AggregateState, new_state
from broker._auth import KeyStore, new_key
from broker._envelope import InMessage, OutMessage, avro_message, header
from broker.errors import ProduceError
from schemas import AgencyRequest, RoutingPlan, registry
from tests.conftest import free_port, poll

# --------------------------------------------------------------------------- a real agency server


class QuietServer(uvicorn.Server):
    """uvicorn without signal handling: the test owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: Starlette, port: int) -> tuple[QuietServer, asyncio.Task[None]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            access_log=False, timeout_graceful_shutdown=1)
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    await poll(lambda: _started(server, task), timeout=10, what="the HTTP server to listen")
    return server, task


async def _started(server: QuietServer, task: asyncio.Task[None]) -> bool | None:
    if task.done():
        await task
        raise AssertionError("the HTTP server exited before it listened")
    return True if server.started else None


async def shutdown(server: QuietServer, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


@dataclass
class FakeAgency:
    """The agency's REST system; the test switches ``behaviour`` between calls."""

    behaviour: str = "sync"  # sync | slow | fail | rate-limit | reject | garbage | async
    fail_first: int = 0  # answer 503 to this many calls, then behave
    retry_after: str = "0"
    outcome: str = "RELEASE"
    code: str = "C01"
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # a slow agency answers when it opens
    callbacks: list[httpx.Response] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    callback_token: str = ""  # the agency's key for the hub's callback

    def decision(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"decision_id": f"SPS-{message['submission_id']}", "submission_id": message["submission_id"],
                "request_id": message["request_id"],
                "version": message["version"], "decided_at": 1_767_225_600_000, "agency_reference": "SPS/2026/0042",
                "items": [{"sequence": i["sequence"], "outcome": self.outcome, "code": self.code,
                           "reason": "phytosanitary certificate checked", "valid_until": "2027-01-31"}
                          for i in message["items"]]}

    async def endpoint(self, request: Request) -> Response:
        message = orjson.loads(await request.body())
        self.received.append(message)
        self.headers.append(dict(request.headers))
        if self.fail_first > 0:
            self.fail_first -= 1
            return Response(b"maintenance", status_code=503)
        if self.behaviour == "slow":
            await self.gate.wait()
        if self.behaviour == "fail":
            return Response(b"down for maintenance", status_code=503)
        if self.behaviour == "rate-limit":
            self.behaviour = "sync"
            return Response(b"", status_code=429, headers={"Retry-After": self.retry_after})
        if self.behaviour == "reject":
            problem = {"type": "about:blank", "title": "Unprocessable request",
                       "detail": "commodity code 06029050 is not in our tariff"}
            return Response(orjson.dumps(problem), status_code=422, media_type="application/problem+json")
        if self.behaviour == "garbage":
            return Response(b'{"items": [{"sequence": 1, "outcome": "MAYBE"}]}', media_type="application/json")
        if self.behaviour == "async":
            task = asyncio.create_task(self._call_back(message))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return Response(b'{"status": "queued"}', status_code=202, media_type="application/json")
        return Response(orjson.dumps(self.decision(message)), media_type="application/json")

    async def _call_back(self, message: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=10, headers={"authorization": f"Bearer {self.callback_token}"}) as client:
            self.callbacks.append(await client.post(message["reply_to"], json=self.decision(message)))

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/requests", self.endpoint, methods=["POST"])])


@dataclass
class Running:
    agency: FakeAgency
    port: int
    server: QuietServer
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/requests"

    async def stop(self) -> None:
        self.agency.gate.set()
        await shutdown(self.server, self.task)

    async def restart(self) -> None:
        self.server, self.task = await serve(self.agency.app(), self.port)


@pytest_asyncio.fixture
async def agency() -> AsyncIterator[Running]:
    fake = FakeAgency()
    port = free_port()
    server, task = await serve(fake.app(), port)
    running = Running(fake, port, server, task)
    try:
        yield running
    finally:
        fake.gate.set()
        if not running.task.done():
            await running.stop()


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read afresh (it moves with the clock; mypy must not assume it stays)."""
    return breaker.state


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- fixtures: one request


def sps_request(submission_id: str = "01JTESTBRIDGE0000000000001", *, kind: str = "DECLARATION") -> AgencyRequest:
    """Live plants with a phytosanitary certificate, as the router sends them to SPS."""
    return {
        "request_id": f"{submission_id}:1:sps", "submission_id": submission_id, "version": 1, "agency": "sps",
        "requested_at": 1_767_225_000_000, "trader_reference": "LRN-PLANTS-1", "declaration_type": "IMZ",
        "declarant_id": "GB123456789000", "parties": [], "authorisations": [],
        "export_country": "NL", "destination_country": "GB",
        "items": [] if kind == "CANCELLATION" else [{
            "sequence": 1, "description": "Live plants", "commodity_code": "06029050", "origin_country": "NL",
            "cas_numbers": [], "documents": [{"category_code": "N", "type_code": "851", "id": "NL-PC-1"}],
            "quantity": None, "quantity_unit": None, "net_mass_kg": 80.5, "value": None, "currency": None,
        }],
        "reasons": [] if kind == "CANCELLATION" else [{"item": 1, "rule": "SPS-PLANTS", "why": "live plants"}],
        "kind": kind,  # type: ignore[typeddict-item]
    }


def incoming(request: AgencyRequest, topic: str = "nsw.agency.sps.requests") -> InMessage:
    out = avro_message(topic, "AgencyRequest", request)
    return InMessage(topic=topic, partition=0, offset=0, timestamp=0, key=out.key, value=out.value,
                     headers=out.headers)


def bridge_for(running: Running, **changes: Any) -> HttpBridge:
    config = BridgeConfig(agency="sps", url=running.url, read_timeout=2.0, retries=2, backoff_base=0.01,
                          backoff_max=0.05, budget=10.0, callback_base_url="http://127.0.0.1:1")
    return HttpBridge(replace(config, **changes))


def decoded(out: OutMessage) -> dict[str, Any]:
    return registry().decode(out.value, "AgencyDecision")[1]


# --------------------------------------------------------------------------- synchronous answers


async def test_sync_decision_is_published_with_the_contract_message(agency: Running) -> None:
    bridge = bridge_for(agency)
    try:
        out = await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert [m.topic for m in out] == ["nsw.agency.sps.decisions"]
    assert out[0].key == b"01JTESTBRIDGE0000000000001"
    assert header(out[0].headers, "nsw-schema") == b"nsw.v1.AgencyDecision"
    assert decoded(out[0]) == {
        "decision_id": "SPS-01JTESTBRIDGE0000000000001", "submission_id": "01JTESTBRIDGE0000000000001",
        "version": 1, "agency": "sps", "decided_at": 1_767_225_600_000,
        "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "phytosanitary certificate checked",
                   "hold_reason": None, "valid_until": "2027-01-31", "selected_by": []}],
        "agency_reference": "SPS/2026/0042", "request_id": "01JTESTBRIDGE0000000000001:1:sps", "decided_by": None,
    }
    sent = agency.agency.received[0]
    assert sent["request_id"] == "01JTESTBRIDGE0000000000001:1:sps"
    assert sent["reply_to"] == "http://127.0.0.1:1/v1/agencies/sps/decisions"
    assert sent["items"][0]["documents"] == [{"code": "N851", "category_code": "N", "type_code": "851",
                                              "id": "NL-PC-1"}]
    assert sent["reasons"] == [{"item": 1, "rule": "SPS-PLANTS", "why": "live plants"}]
    assert agency.agency.headers[0]["idempotency-key"] == "01JTESTBRIDGE0000000000001:1:sps"


async def test_failing_agency_is_retried_until_it_recovers(agency: Running) -> None:
    agency.agency.fail_first = 2
    bridge = bridge_for(agency, retries=3)
    try:
        out = await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert decoded(out[0])["items"][0]["outcome"] == "RELEASE"
    assert len(agency.agency.received) == 3
    assert state_of(bridge.breaker) == "closed"


async def test_agency_failing_beyond_the_retries_is_unavailable_and_retriable(agency: Running) -> None:
    agency.agency.behaviour = "fail"
    bridge = bridge_for(agency, retries=2)
    try:
        with pytest.raises(AgencyUnavailable, match="server error 503: down for maintenance") as caught:
            await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert caught.value.retriable is True
    assert len(agency.agency.received) == 3


async def test_429_waits_as_long_as_retry_after_says(agency: Running) -> None:
    agency.agency.behaviour, agency.agency.retry_after = "rate-limit", "3"
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    bridge = HttpBridge(bridge_for(agency).config, sleep=sleep)
    try:
        out = await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert waits == [3.0]
    assert len(out) == 1
    assert len(agency.agency.received) == 2


async def test_429_with_retry_after_beyond_the_budget_gives_up_at_once(agency: Running) -> None:
    agency.agency.behaviour, agency.agency.retry_after = "rate-limit", "120"
    bridge = bridge_for(agency, budget=5.0)
    try:
        with pytest.raises(AgencyUnavailable, match="budget") as caught:
            await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert caught.value.retry_after == 120.0
    assert len(agency.agency.received) == 1


async def test_slow_agency_times_out(agency: Running) -> None:
    agency.agency.behaviour = "slow"
    bridge = bridge_for(agency, read_timeout=0.2, retries=1)
    try:
        with pytest.raises(AgencyUnavailable, match="no answer in time"):
            await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert len(agency.agency.received) == 2


async def test_4xx_is_not_retried_and_carries_the_agency_problem(agency: Running) -> None:
    agency.agency.behaviour = "reject"
    bridge = bridge_for(agency)
    try:
        with pytest.raises(AgencyRejected, match="commodity code 06029050 is not in our tariff") as caught:
            await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert caught.value.retriable is False
    assert caught.value.status == 422
    assert len(agency.agency.received) == 1
    assert state_of(bridge.breaker) == "closed"


async def test_answer_breaking_the_contract_is_not_retriable(agency: Running) -> None:
    agency.agency.behaviour = "garbage"
    bridge = bridge_for(agency)
    try:
        with pytest.raises(DecisionFormatError) as caught:
            await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert caught.value.retriable is False
    paths = {e.path for e in caught.value.errors}
    assert {"/items/0/outcome", "/items/0/code", "/items/0/reason"} <= paths


async def test_cancellation_is_delivered_and_yields_no_decision(agency: Running) -> None:
    bridge = bridge_for(agency)
    try:
        assert await bridge.handle(incoming(sps_request(kind="CANCELLATION"))) == []
    finally:
        await bridge.aclose()
    assert agency.agency.received[0]["kind"] == "CANCELLATION"


# --------------------------------------------------------------------------- down, breaker


async def test_stopped_agency_is_unavailable_until_it_is_back(agency: Running) -> None:
    bridge = bridge_for(agency, retries=1)
    try:
        await agency.stop()
        with pytest.raises(AgencyUnavailable, match="cannot reach"):
            await bridge.handle(incoming(sps_request()))
        await agency.restart()
        out = await bridge.handle(incoming(sps_request()))
    finally:
        await bridge.aclose()
    assert decoded(out[0])["items"][0]["outcome"] == "RELEASE"


async def test_breaker_opens_fails_fast_then_half_opens_and_closes(agency: Running) -> None:
    agency.agency.behaviour = "fail"
    clock = ManualClock()
    config = replace(bridge_for(agency).config, retries=0,
                     breaker=BreakerConfig(failures_to_open=3, open_seconds=30, half_open_probes=1))
    bridge = HttpBridge(config, clock=clock)
    try:
        for _ in range(3):
            with pytest.raises(AgencyUnavailable, match="503"):
                await bridge.handle(incoming(sps_request()))
        assert state_of(bridge.breaker) == "open"
        with pytest.raises(CircuitOpen) as caught:
            await bridge.handle(incoming(sps_request()))
        assert caught.value.retriable is True
        assert caught.value.retry_after == 30
        assert len(agency.agency.received) == 3  # failed fast: the agency was not called

        clock.now += 30
        assert state_of(bridge.breaker) == "half-open"
        with pytest.raises(AgencyUnavailable, match="503"):  # the probe fails: open again
            await bridge.handle(incoming(sps_request()))
        assert state_of(bridge.breaker) == "open"
        assert len(agency.agency.received) == 4

        agency.agency.behaviour = "sync"  # the agency recovers
        clock.now += 30
        out = await bridge.handle(incoming(sps_request()))
        assert state_of(bridge.breaker) == "closed"
        assert decoded(out[0])["items"][0]["outcome"] == "RELEASE"
    finally:
        await bridge.aclose()


def test_half_open_lets_only_the_configured_probes_through() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(BreakerConfig(failures_to_open=1, open_seconds=5, half_open_probes=2), name="t",
                             clock=clock)
    breaker.record_failure()
    clock.now += 5
    breaker.acquire()
    breaker.acquire()
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    breaker.record_success()
    assert state_of(breaker) == "half-open"
    breaker.record_success()
    assert state_of(breaker) == "closed"
    assert breaker.opened == 1


def test_successes_reset_the_failure_count() -> None:
    breaker = CircuitBreaker(BreakerConfig(failures_to_open=2), name="t", clock=ManualClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert state_of(breaker) == "closed"
    breaker.record_failure()
    assert state_of(breaker) == "open"


def test_backoff_is_full_jitter_under_the_cap() -> None:
    import random  # noqa: PLC0415

    config = BridgeConfig(agency="sps", url="http://127.0.0.1:1/", backoff_base=0.5, backoff_max=2.0)
    rng = random.Random(7)
    waits = [config.backoff(attempt, rng) for attempt in (1, 2, 3, 4, 5) for _ in range(50)]
    assert all(0 <= w <= 2.0 for w in waits)
    assert max(waits[:50]) <= 0.5
    assert max(waits[200:]) > 1.0  # capped at backoff_max, not at base


# --------------------------------------------------------------------------- asynchronous answers


@dataclass
class Published:
    messages: list[OutMessage] = field(default_factory=list)
    failing: bool = False

    async def __call__(self, message: OutMessage) -> object:
        if self.failing:
            raise ProduceError("produce to nsw.agency.sps.decisions: Kafka unreachable")
        self.messages.append(message)
        return (0, len(self.messages))


@dataclass
class CallbackHub:
    """The callback endpoint on a real HTTP server, with agency keys and the aggregator states it checks."""

    base: str
    published: Published
    keys: KeyStore
    states: dict[str, AggregateState] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def outstanding(self, sid: str, version: int, agency: str, items: list[int], *, status: str = "routed") -> str:
        """Route ``items`` of ``sid`` to ``agency`` at ``version``; the request id it must quote."""
        request_id = f"{sid}:{version}:{agency}:0123abcd"
        state = self.states.setdefault(sid, new_state(sid))
        plan: RoutingPlan = {
            "submission_id": sid, "version": version, "routed_at": 1, "received_at": 1, "trader_reference": "R",
            "declarant_id": "D", "item_sequences": items, "kind": "DECLARATION", "trader": "t",
            "agencies": [{"agency": agency, "reasons": [{"item": i, "rule": "R", "why": "w"} for i in items],
                          "carried_from_version": None, "request_id": request_id}]}
        state["plan"], state["version"], state["status"] = plan, version, status
        return request_id

    def auth(self, agency: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[agency]}"}


@pytest_asyncio.fixture
async def hub_callback() -> AsyncIterator[CallbackHub]:
    keys = KeyStore()
    hub = CallbackHub("", Published(), keys)
    for agency in ("sps", "cwc", "ipr"):
        token, record = new_key("", agency=agency)
        keys.learn(record)
        hub.tokens[agency] = token
    trader_token, trader_record = new_key("trader-1")
    keys.learn(trader_record)
    hub.tokens["trader"] = trader_token
    app = Starlette(routes=callback_routes(hub.published, authenticate=keys.authenticate_agency,
                                           lookup=hub.states.get, plan_wait=0.2))
    port = free_port()
    server, task = await serve(app, port)
    hub.base = f"http://127.0.0.1:{port}"
    try:
        yield hub
    finally:
        await shutdown(server, task)


async def test_202_then_the_decision_arrives_on_the_callback(agency: Running, hub_callback: CallbackHub) -> None:
    published = hub_callback.published
    request = sps_request()
    request["request_id"] = hub_callback.outstanding(request["submission_id"], 1, "sps", [1])
    agency.agency.behaviour, agency.agency.outcome, agency.agency.code = "async", "HOLD", "H01"
    agency.agency.callback_token = hub_callback.tokens["sps"]
    bridge = bridge_for(agency, callback_base_url=hub_callback.base)
    try:
        assert await bridge.handle(incoming(request)) == []
    finally:
        await bridge.aclose()
    await poll(lambda: _some(published.messages), timeout=10, what="the callback's decision")
    assert agency.agency.callbacks[0].status_code == 202
    assert agency.agency.callbacks[0].json() == {"decision_id": "SPS-01JTESTBRIDGE0000000000001",
                                                 "status": "accepted"}
    message = published.messages[0]
    assert message.topic == "nsw.agency.sps.decisions"
    assert message.key == b"01JTESTBRIDGE0000000000001"
    decision = decoded(message)
    assert decision["agency"] == "sps"
    assert decision["request_id"] == request["request_id"]
    assert decision["items"] == [{"sequence": 1, "outcome": "HOLD", "code": "H01",
                                  "reason": "phytosanitary certificate checked",
                                  "hold_reason": "OTHER", "valid_until": "2027-01-31",  # no reason given: OTHER
                                  "selected_by": []}]


async def test_repeated_callback_publishes_the_same_decision(hub_callback: CallbackHub) -> None:
    published = hub_callback.published
    rid = hub_callback.outstanding("S-1", 2, "cwc", [3])
    body: dict[str, Any] = {"decision_id": "CWC-77", "submission_id": "S-1", "version": 2, "request_id": rid,
            "items": [{"sequence": 3, "outcome": "REFUSE", "code": "N03", "reason": "Schedule 2, State not Party"}]}
    async with httpx.AsyncClient(base_url=hub_callback.base, headers=hub_callback.auth("cwc")) as client:
        first = await client.post("/v1/agencies/cwc/decisions", json=body)
        second = await client.post("/v1/agencies/cwc/decisions", json=body)
        changed = await client.post("/v1/agencies/cwc/decisions",
                                    json={**body, "items": [{**body["items"][0], "outcome": "HOLD", "code": "H01"}]})
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (second.status_code, second.json()["status"]) == (202, "duplicate")
    assert [m.value for m in published.messages] == [published.messages[0].value] * 2
    assert changed.status_code == 409
    assert decoded(published.messages[0])["decision_id"] == "CWC-77"


async def test_callback_without_decision_id_gets_a_stable_one(hub_callback: CallbackHub) -> None:
    rid = hub_callback.outstanding("S-2", 1, "cwc", [1])
    body = {"submission_id": "S-2", "version": 1, "request_id": rid,
            "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "no scheduled chemical"}]}
    async with httpx.AsyncClient(base_url=hub_callback.base, headers=hub_callback.auth("cwc")) as client:
        answers = [await client.post("/v1/agencies/cwc/decisions", json=body) for _ in range(2)]
    ids = {a.json()["decision_id"] for a in answers}
    assert len(ids) == 1
    assert ids.pop().startswith("S-2:1:cwc:")
    assert [a.json()["status"] for a in answers] == ["accepted", "duplicate"]


@pytest.mark.parametrize(
    "case",
    [
        ("/v1/agencies/sps/decisions", b"{not json", 400, "invalid-json", set()),
        ("/v1/agencies/sps/decisions", b"[1, 2]", 400, "invalid-json", set()),
        ("/v1/agencies/fisheries/decisions", b"{}", 404, "unknown-agency", set()),
        ("/v1/agencies/sps/decisions", b'{"submission_id": "S", "version": "2", "items": []}', 422,
         "invalid-decision", {"/version", "/items", "/request_id"}),
        ("/v1/agencies/sps/decisions",
         b'{"submission_id": "S", "version": 1, "request_id": "r", "items": [{"sequence": 1, "outcome": "OK",'
         b' "code": "C1", "reason": "r"}, {"sequence": 2, "outcome": "REFUSE", "code": "C1", "reason": "r"}]}',
         422, "invalid-decision", {"/items/0/outcome", "/items/1/code"}),
        ("/v1/agencies/sps/decisions", b'{"version": 1, "request_id": "r", "items": [{"sequence": 1, "outcome":'
         b' "HOLD", "code": "H01", "reason": "r"}, {"sequence": 1, "outcome": "HOLD", "code": "H01", "reason": "r"}]}',
         422, "invalid-decision", {"/submission_id", "/items/1/sequence"}),
        ("/v1/agencies/sps/decisions", b'{"submission_id": "S", "version": 1, "request_id": "r", "agency_reference":'
         b' 7, "items": [{"sequence": 1, "outcome": "HOLD", "code": "H01", "reason": "r", "hold_reason": "LUNCH"},'
         b'{"sequence": 2, "outcome": "RELEASE", "code": "C01", "reason": "r", "hold_reason": "INSPECTION",'
         b' "valid_until": "31/12/2026"}]}',
         422, "invalid-decision", {"/agency_reference", "/items/0/hold_reason", "/items/1/hold_reason",
                                   "/items/1/valid_until"}),
        ("/v1/agencies/sps/decisions", b'{"submission_id": "S", "version": 1, "request_id": "r", "decided_by":'
         b' "sps/alice", "items": [{"sequence": 1, "outcome": "HOLD", "code": "H01", "reason": "r", "selected_by":'
         b' ["P1", 7, ""]}, {"sequence": 2, "outcome": "RELEASE", "code": "C01", "reason": "r", "selected_by": "P1"}]}',
         422, "invalid-decision", {"/decided_by", "/items/0/selected_by/1", "/items/0/selected_by/2",
                                   "/items/1/selected_by"}),
    ],
    ids=["not-json", "not-an-object", "unknown-agency", "bad-version-no-items",
         "bad-outcome-and-code", "no-submission-duplicate-item", "bad-vocabulary", "officer-and-bad-selections"],
)
async def test_bad_callbacks_get_problem_details(
    hub_callback: CallbackHub, case: tuple[str, bytes, int, str, set[str]]
) -> None:
    path, body, status, slug, error_paths = case
    async with httpx.AsyncClient(base_url=hub_callback.base, headers=hub_callback.auth("sps")) as client:
        answer = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"].endswith("/" + slug)
    assert {e["path"] for e in problem["errors"]} == error_paths
    assert hub_callback.published.messages == []


@pytest.mark.parametrize(
    ("who", "path", "status", "slug"),
    [
        (None, "/v1/agencies/ipr/decisions", 401, "unauthorised"),  # anonymous
        ("wrong", "/v1/agencies/ipr/decisions", 401, "unauthorised"),  # a made-up key
        ("trader", "/v1/agencies/ipr/decisions", 401, "unauthorised"),  # a trader's key is no agency's
        ("sps", "/v1/agencies/ipr/decisions", 403, "wrong-agency"),  # SPS speaking for IPR
    ],
    ids=["anonymous", "made-up-key", "trader-key", "other-agency-key"],
)
async def test_only_the_agency_itself_may_call_back(hub_callback: CallbackHub, who: str | None, path: str,
                                                    status: int, slug: str) -> None:
    rid = hub_callback.outstanding("S-9", 1, "ipr", [1])
    body = {"submission_id": "S-9", "version": 1, "request_id": rid,
            "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "no recorded right"}]}
    headers = {} if who is None else (
        {"authorization": "Bearer nsw_0000_forged"} if who == "wrong" else hub_callback.auth(who))
    async with httpx.AsyncClient(base_url=hub_callback.base, headers=headers) as client:
        answer = await client.post(path, json=body)
    assert (answer.status_code, answer.json()["type"].rsplit("/", 1)[1]) == (status, slug)
    assert hub_callback.published.messages == []  # nothing published, not even a dead letter: no principal


async def test_revoked_agency_key_is_refused(hub_callback: CallbackHub) -> None:
    rid = hub_callback.outstanding("S-10", 1, "ipr", [1])
    body = {"submission_id": "S-10", "version": 1, "request_id": rid,
            "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "no recorded right"}]}
    for record in hub_callback.keys.records():
        if record.get("agency") == "ipr":
            hub_callback.keys.learn({**record, "revoked_at": 5})
    async with httpx.AsyncClient(base_url=hub_callback.base, headers=hub_callback.auth("ipr")) as client:
        answer = await client.post("/v1/agencies/ipr/decisions", json=body)
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("change", "status", "slug", "path"),
    [
        ({"agency": "ipr"}, 403, "wrong-agency", "/agency"),  # the body names another agency
        ({"submission_id": "S-NOT-YET"}, 409, "no-outstanding-request", "/submission_id"),  # a future id
        ({"version": 2}, 409, "no-outstanding-request", "/submission_id"),  # a version not routed
        ({"request_id": "S-20:1:sps:guessed0"}, 409, "request-mismatch", "/request_id"),
        ({"items": [{"sequence": 7, "outcome": "RELEASE", "code": "C01", "reason": "r"}]}, 422,
         "item-not-requested", "/items/0/sequence"),
    ],
    ids=["names-other-agency", "unknown-submission", "unrouted-version", "guessed-request", "item-not-asked"],
)
async def test_decisions_must_answer_an_outstanding_request(
    hub_callback: CallbackHub, change: dict[str, Any], status: int, slug: str, path: str
) -> None:
    rid = hub_callback.outstanding("S-20", 1, "sps", [1, 2])
    body = {"submission_id": "S-20", "version": 1, "request_id": rid,
            "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "certificate valid"}], **change}
    async with httpx.AsyncClient(base_url=hub_callback.base, headers=hub_callback.auth("sps")) as client:
        answer = await client.post("/v1/agencies/sps/decisions", json=body)
    assert answer.status_code == status
    problem = answer.json()
    assert problem["type"].endswith("/" + slug)
    if slug == "wrong-agency":
        assert hub_callback.published.messages == []
        return
    assert [e["path"] for e in problem["errors"]] == [path]
    # Refused, and kept with the reason on the topic the auditor chains
    [kept] = hub_callback.published.messages
    assert kept.topic == "nsw.decisions.refused"
    assert header(kept.headers, "nsw-error-type") == b"DecisionRefusedError"
    assert header(kept.headers, "nsw-source-topic") == b"nsw.agency.sps.decisions"
    assert (header(kept.headers, "nsw-error-message") or b"").startswith(slug.encode())


async def test_callback_with_token_and_kafka_down(hub_callback: CallbackHub) -> None:
    published = hub_callback.published
    rid = hub_callback.outstanding("S-3", 1, "ipr", [4])
    body = {"decision_id": "IPR-1", "submission_id": "S-3", "version": 1, "request_id": rid,
            "items": [{"sequence": 4, "outcome": "HOLD", "code": "H01", "reason": "ZENTRA recorded right"}]}
    async with httpx.AsyncClient(base_url=hub_callback.base, headers=hub_callback.auth("ipr")) as client:
        published.failing = True
        down = await client.post("/v1/agencies/ipr/decisions", json=body)
        published.failing = False
        up = await client.post("/v1/agencies/ipr/decisions", json=body)
    assert down.status_code == 503
    assert down.headers["retry-after"] == "5"
    assert (up.status_code, up.json()["status"]) == (202, "accepted")  # the failed try was not remembered
    assert len(published.messages) == 1


# --------------------------------------------------------------------------- contract and modes (pure)


def test_agency_message_for_a_cancellation_has_no_items() -> None:
    message = agency_message(sps_request(kind="CANCELLATION"), reply_to=None)
    assert (message["kind"], message["items"], message["reply_to"]) == ("CANCELLATION", [], None)


def test_sync_answer_must_not_contradict_the_request() -> None:
    body = {"submission_id": "OTHER", "version": 3,
            "items": [{"sequence": 9, "outcome": "RELEASE", "code": "C01", "reason": "ok"}]}
    with pytest.raises(DecisionFormatError) as caught:
        parse_decision(body, agency="sps", received_at=0, submission_id="S", version=1, sequences={1},
                       request_id="S:1:sps:abc")
    assert {e.path for e in caught.value.errors} == {"/submission_id", "/version", "/items/0/sequence"}


def test_modes_from_env() -> None:
    env = {"NSW_AGENCY_SPS_MODE": "http", "NSW_AGENCY_SPS_URL": "https://sps.example/api/requests",
           "NSW_AGENCY_SPS_READ_TIMEOUT": "4.5", "NSW_AGENCY_SPS_BREAKER_FAILURES": "7",
           "NSW_AGENCY_SPS_TOKEN": "t0k", "NSW_CALLBACK_BASE_URL": "https://hub.example/",
           "NSW_AGENCY_IPR_MODE": "topic"}
    modes = AgencyModes.from_env(env)
    assert [modes.mode(a) for a in ("customs", "sps", "cwc", "ipr")] == ["embedded", "http", "embedded", "topic"]
    config = modes.bridges["sps"]
    assert config.timeout == httpx.Timeout(connect=2.0, read=4.5, write=5.0, pool=2.0)
    assert config.breaker.failures_to_open == 7
    assert config.reply_to == "https://hub.example/v1/agencies/sps/decisions"
    assert config.headers == {"authorization": "Bearer t0k"}
    assert adapter_handler("ipr", modes) is None
    assert isinstance(adapter_handler("sps", modes), HttpBridge)
    assert callable(adapter_handler("customs", modes))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NSW_AGENCY_SPS_MODE": "carrier-pigeon"}, "is not one of embedded, topic, http"),
        ({"NSW_AGENCY_SPS_MODE": "http"}, "needs NSW_AGENCY_SPS_URL"),
        ({"NSW_AGENCY_SPS_MODE": "http", "NSW_AGENCY_SPS_URL": "ftp://x"}, "not an http"),
        ({"NSW_AGENCY_SPS_MODE": "http", "NSW_AGENCY_SPS_URL": "http://x", "NSW_AGENCY_SPS_RETRIES": "many"},
         "NSW_AGENCY_SPS_RETRIES='many' is not a whole number"),
        ({"NSW_AGENCY_SPS_MODE": "http", "NSW_AGENCY_SPS_URL": "http://x", "NSW_AGENCY_SPS_BREAKER_PROBES": "0"},
         "half_open_probes"),
    ],
)
def test_bad_mode_configuration_is_refused_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(AdapterConfigError, match=message):
        AgencyModes.from_env(env)


async def test_close_handler_closes_the_bridge_client(agency: Running) -> None:
    bridge = bridge_for(agency)
    await bridge.handle(incoming(sps_request()))
    client = bridge._client
    assert client is not None
    await close_handler(bridge)
    assert client.is_closed


async def _some(found: list[OutMessage]) -> bool | None:
    return True if found else None
