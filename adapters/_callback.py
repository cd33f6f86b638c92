"""The callback endpoint: agencies that answered 202 POST their decisions here.

``POST /v1/agencies/{agency}/decisions`` with a decision document (``adapters._agency_api``) and
``Authorization: Bearer <the agency's key>`` (``nsw keys create --agency <agency>``):

    202  the decision is on ``nsw.agency.<agency>.decisions`` (acknowledged by Kafka); body
         ``{"decision_id": ..., "status": "accepted" | "duplicate"}``
    400  the body is not JSON, or not an object               (problem ``invalid-json``)
    401  no valid, unrevoked key of an agency                  (problem ``unauthorised``); an agency
         without a key cannot call back at all (fail closed)
    403  the key is another agency's, or the body names        (problem ``wrong-agency``)
         another agency
    404  the agency is not one the hub knows                   (problem ``unknown-agency``)
    409  the decision answers no outstanding request: unknown  (problems ``no-outstanding-request``,
         submission or version, agency not asked, another      ``superseded``, ``request-mismatch``,
         request id, a cancelled declaration; or the           ``cancelled``, ``decision-conflict``)
         decision_id was used for a different decision
    413  the body is larger than the endpoint accepts          (problem ``too-large``)
    422  the decision breaks the contract, or decides items    (problems ``invalid-decision``,
         the agency was not asked about; ``errors`` lists      ``missing-request-id``,
         ``{"path": "/items/0/outcome", "message": ...}``      ``item-not-requested``)
    503  Kafka did not acknowledge; nothing was published      (problem ``unavailable``, Retry-After)

The agency is the authenticated principal, never a field of the body. A decision is published only when
it answers the request the hub has outstanding for that agency (``broker._aggregate.check_decision``, on
the status view's copy of the aggregator state; a plan not yet seen is waited for a few seconds); the
aggregator checks again. A refused decision of an authenticated agency is written to the dead-letter topic
with its reason to ``nsw.decisions.refused``, which the auditor chains.

Idempotent: a decision with a ``decision_id`` the endpoint has seen is published again with the
same bytes (the aggregator takes a repeated answer as no news); one without ``decision_id`` gets
an id derived from its content, so a repeat is recognisable too. The memory of recent ids is per
process and bounded; across instances the stable id is what makes a repeat harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters._agency_api import callback_path, parse_decision
from adapters.errors import DecisionFormatError
from broker._aggregate import AggregateState, Refusal, check_decision
from broker._aggregator import refused_letter
from broker._clock import now_ms
from broker._envelope import OutMessage, avro_message
from broker._http import bounded_body
from broker._topics import REFUSED_DECISIONS, decisions_topic
from broker.errors import NSWError, TransportError
from schemas import AGENCIES, AgencyDecision

log = structlog.get_logger("nsw.callback")

PROBLEM_BASE: Final = "https://nsw-broker.dev/problems/"
MAX_BODY_BYTES: Final = 1024 * 1024
REMEMBERED: Final = 10_000
#: How long a decision whose plan the status view has not seen yet waits for it before it is refused.
PLAN_WAIT_SECONDS: Final = 5.0

Publish = Callable[[OutMessage], Awaitable[object]]
#: An agency's token -> the agency it authenticates (None: not a valid agency key).
Authenticate = Callable[[str], str | None]
#: A submission id -> the aggregator's state of it as the status view knows it (None: unknown).
Lookup = Callable[[str], AggregateState | None]

_TITLES: Final[dict[str, tuple[int, str]]] = {
    "invalid-json": (400, "The body is not a JSON object"),
    "unauthorised": (401, "The agency's credentials are missing or wrong"),
    "wrong-agency": (403, "An agency decides only for itself"),
    "unknown-agency": (404, "No such agency"),
    "decision-conflict": (409, "The decision id was already used for a different decision"),
    "no-outstanding-request": (409, "The decision answers no outstanding request"),
    "superseded": (409, "The decision is for a version that is not the one to decide"),
    "request-mismatch": (409, "The decision quotes a request the hub did not send"),
    "cancelled": (409, "The declaration was cancelled"),
    "too-many-waiting": (409, "Too many decisions wait for this submission"),
    "missing-request-id": (422, "The decision does not quote the request it answers"),
    "item-not-requested": (422, "The decision covers items the agency was not asked about"),
    "too-large": (413, "The body is larger than the hub accepts"),
    "invalid-decision": (422, "The decision does not follow the agency decision contract"),
    "unavailable": (503, "The hub cannot reach Kafka; nothing was published"),
}


def _problem(slug: str, *, detail: str, errors: list[dict[str, Any]] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    status, title = _TITLES[slug]
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, "errors": errors or []}
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json", headers=headers)


class _Refused(Exception):  # noqa: N818 - internal signal carrying the answer, never leaves this module
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response



class DecisionCallback:
    """The endpoint's state: who may call, what they may answer, where decisions go, the recent ids."""

    def __init__(
        self,
        publish: Publish,
        *,
        authenticate: Authenticate,
        lookup: Lookup,
        agencies: Collection[str] = AGENCIES,
        now_ms: Callable[[], int] = now_ms,
        topic_for: Callable[[str], str] = decisions_topic,
        refused_topic: str = REFUSED_DECISIONS,
        plan_wait: float = PLAN_WAIT_SECONDS,
    ) -> None:
        self._publish = publish
        self._authenticate = authenticate
        self._lookup = lookup
        self._agencies = frozenset(agencies)
        self.now_ms = now_ms
        self._topic_for = topic_for
        self._refused_topic = refused_topic
        self._plan_wait = plan_wait
        self._seen: OrderedDict[str, tuple[bytes, OutMessage]] = OrderedDict()
        self.published = 0
        self.refused = 0

    def _principal(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._authenticate(token.strip())

    async def _decision(self, agency: str, request: Request) -> AgencyDecision:
        """The checked decision of a callback; raise _Refused with the answer to give otherwise."""
        if agency not in self._agencies:
            known = ", ".join(sorted(self._agencies))
            raise _Refused(_problem("unknown-agency", detail=f"no agency {agency!r}; known: {known}"))
        principal = self._principal(request)
        if principal is None:
            raise _Refused(_problem("unauthorised", detail=f"a valid key of agency {agency} is required "
                                    f"(nsw keys create --agency {agency})", headers={"WWW-Authenticate": "Bearer"}))
        if principal != agency:
            raise _Refused(_problem("wrong-agency", detail=f"this key is {principal}'s; it cannot decide for {agency}"))
        raw = await bounded_body(request, MAX_BODY_BYTES)
        if raw is None:
            raise _Refused(_problem("too-large", detail=f"the body exceeds {MAX_BODY_BYTES} bytes"))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Refused(_problem("invalid-json", detail=f"not JSON: {exc}")) from exc
        if not isinstance(body, dict):
            raise _Refused(_problem("invalid-json", detail="the decision must be a JSON object"))
        named = body.get("agency")
        if named is not None and named != agency:
            raise _Refused(_problem("wrong-agency", detail=f"{agency} cannot decide for {named!r}",
                                    errors=[{"path": "/agency", "message": f"must be {agency} or left out"}]))
        try:
            return parse_decision(body, agency=agency, received_at=self.now_ms())
        except DecisionFormatError as exc:
            log.info("callback_refused", agency=agency, errors=len(exc.errors))
            raise _Refused(_problem("invalid-decision", detail=str(exc),
                                    errors=[{"path": e.path, "message": e.message} for e in exc.errors])) from exc

    async def _binding(self, agency: str, decision: AgencyDecision) -> Refusal | None:
        """Why ``decision`` answers no outstanding request of ``agency`` (None: it does). A plan the status
        view has not seen yet (the agency may answer within milliseconds of the request) is waited for."""
        deadline = time.monotonic() + self._plan_wait
        while True:
            state = self._lookup(decision["submission_id"])
            plan = state["plan"] if state is not None else None
            refusal = check_decision(plan, decision, agency=agency,
                                     cancelled=state is not None and state["status"] == "cancelled")
            if refusal is None or refusal.kind != "no-outstanding-request" or time.monotonic() >= deadline:
                return refusal
            await asyncio.sleep(0.05)

    async def _keep_refused(self, agency: str, decision: AgencyDecision, refusal: Refusal) -> None:
        """The refused decision on ``nsw.decisions.refused`` with its reason, so it is in the audit chain (the
        ingress may write there, not to the dead-letter topic: nothing it writes can be redriven)."""
        letter = refused_letter(decision, refusal, topic=self._topic_for(agency), service="callback",
                                dlq=self._refused_topic, timestamp=decision["decided_at"])
        try:
            await self._publish(letter)
        except NSWError as exc:  # kept best effort: the agency has its answer either way
            log.warning("refused_decision_not_kept", error=str(exc))

    def _message(self, key: str, decision: AgencyDecision, content: bytes) -> tuple[OutMessage, str]:
        """The record to publish: the remembered one for a repeat (same bytes), else a new one."""
        seen = self._seen.get(key)
        if seen is None:
            return avro_message(self._topic_for(decision["agency"]), "AgencyDecision", decision), "accepted"
        if seen[0] != content:
            raise _Refused(_problem("decision-conflict",
                                    detail=f"decision {decision['decision_id']} was received with other content"))
        return seen[1], "duplicate"

    async def receive(self, request: Request) -> Response:
        agency = request.path_params["agency"]
        # What makes two callbacks "the same decision": everything but the time it was received.
        try:
            decision = await self._decision(agency, request)
        except _Refused as refused:
            self.refused += 1
            return refused.response
        structlog.contextvars.bind_contextvars(
            submission_id=decision["submission_id"], version=decision["version"], agency=agency
        )
        refusal = await self._binding(agency, decision)
        if refusal is not None:
            self.refused += 1
            log.warning("callback_decision_refused", refusal=refusal.kind)
            await self._keep_refused(agency, decision, refusal)
            return _problem(refusal.kind, detail=refusal.message,
                            errors=[{"path": refusal.path, "message": refusal.message}])
        try:
            content = orjson.dumps([decision["submission_id"], decision["version"], decision.get("request_id"),
                                    decision["items"]])
            key = f"{agency}:{decision['decision_id']}"
            message, status = self._message(key, decision, content)
        except _Refused as refused:
            self.refused += 1
            return refused.response
        try:
            await self._publish(message)
        except TransportError as exc:
            log.warning("callback_publish_failed", error=str(exc))
            return _problem("unavailable", detail="Kafka did not acknowledge the decision; send it again",
                            headers={"Retry-After": "5"})
        self._remember(key, content, message)
        self.published += 1
        log.info("callback_decision", status=status, outcomes=sorted({i["outcome"] for i in decision["items"]}))
        return Response(orjson.dumps({"decision_id": decision["decision_id"], "status": status}),
                        status_code=202, media_type="application/json")

    async def submit(self, decision: AgencyDecision) -> Refusal | None:
        """Publish a decision made in the hub itself by an authenticated person of ``decision["agency"]`` (the
        console's officers): checked against the outstanding request like any callback, refused decisions kept
        on ``nsw.decisions.refused``; None once Kafka has it. TransportError when Kafka did not acknowledge."""
        agency = decision["agency"]
        refusal = await self._binding(agency, decision)
        if refusal is not None:
            self.refused += 1
            log.warning("console_decision_refused", agency=agency, refusal=refusal.kind)
            await self._keep_refused(agency, decision, refusal)
            return refusal
        await self._publish(avro_message(self._topic_for(agency), "AgencyDecision", decision))
        self.published += 1
        return None

    def routes(self) -> list[Route]:
        return [Route(callback_path("{agency}"), self.receive, methods=["POST"])]

    def _remember(self, key: str, content: bytes, message: OutMessage) -> None:
        self._seen[key] = (content, message)
        self._seen.move_to_end(key)
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)


def callback_routes(
    publish: Publish,
    *,
    authenticate: Authenticate,
    lookup: Lookup,
    agencies: Collection[str] = AGENCIES,
    now_ms: Callable[[], int] = now_ms,
    topic_for: Callable[[str], str] = decisions_topic,
    refused_topic: str = REFUSED_DECISIONS,
    plan_wait: float = PLAN_WAIT_SECONDS,
) -> list[Route]:
    """Starlette routes of the callback endpoint; mount them in the ingress app.

    ``publish`` writes one record and returns once Kafka has it (the ingress's ``Producer.send``);
    ``authenticate`` maps a bearer token to the agency it belongs to (``KeyStore.authenticate_agency``);
    ``lookup`` gives the aggregator's state of a submission (the status view's copy); ``topic_for``
    names an agency's decisions topic (tests use their own topics).
    """
    endpoint = DecisionCallback(publish, authenticate=authenticate, lookup=lookup, agencies=agencies,
                                now_ms=now_ms, topic_for=topic_for, refused_topic=refused_topic, plan_wait=plan_wait)
    return endpoint.routes()
