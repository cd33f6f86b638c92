"""The callback endpoint: agencies that answered 202 POST their decisions here.

``POST /v1/agencies/{agency}/decisions`` with a decision document (``adapters._agency_api``):

    202  the decision is on ``nsw.agency.<agency>.decisions`` (acknowledged by Kafka); body
         ``{"decision_id": ..., "status": "accepted" | "duplicate"}``
    400  the body is not JSON, or not an object               (problem ``invalid-json``)
    401  the agency's bearer token is missing or wrong         (problem ``unauthorised``)
    404  the agency is not one the hub knows                   (problem ``unknown-agency``)
    409  the decision_id was used for a different decision     (problem ``decision-conflict``)
    413  the body is larger than the endpoint accepts          (problem ``too-large``)
    422  the decision breaks the contract; ``errors`` lists    (problem ``invalid-decision``)
         ``{"path": "/items/0/outcome", "message": ...}``
    503  Kafka did not acknowledge; nothing was published      (problem ``unavailable``, Retry-After)

Idempotent: a decision with a ``decision_id`` the endpoint has seen is published again with the
same bytes (the aggregator takes a repeated answer as no news); one without ``decision_id`` gets
an id derived from its content, so a repeat is recognisable too. The memory of recent ids is per
process and bounded; across instances the stable id is what makes a repeat harmless.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Final

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters._agency_api import callback_path, parse_decision
from adapters.errors import DecisionFormatError
from broker._clock import now_ms
from broker._envelope import OutMessage, avro_message
from broker._topics import decisions_topic
from broker.errors import TransportError
from schemas import AGENCIES, AgencyDecision

log = structlog.get_logger("nsw.callback")

PROBLEM_BASE: Final = "https://nsw-broker.dev/problems/"
MAX_BODY_BYTES: Final = 1024 * 1024
REMEMBERED: Final = 10_000

Publish = Callable[[OutMessage], Awaitable[object]]

_TITLES: Final[dict[str, tuple[int, str]]] = {
    "invalid-json": (400, "The body is not a JSON object"),
    "unauthorised": (401, "The agency's credentials are missing or wrong"),
    "unknown-agency": (404, "No such agency"),
    "decision-conflict": (409, "The decision id was already used for a different decision"),
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
    """The endpoint's state: who may call, where decisions go, and the recent decision ids."""

    def __init__(
        self,
        publish: Publish,
        *,
        agencies: Collection[str] = AGENCIES,
        tokens: Mapping[str, str] | None = None,
        now_ms: Callable[[], int] = now_ms,
        topic_for: Callable[[str], str] = decisions_topic,
    ) -> None:
        self._publish = publish
        self._agencies = frozenset(agencies)
        self._tokens = dict(tokens or {})
        self.now_ms = now_ms
        self._topic_for = topic_for
        self._seen: OrderedDict[str, tuple[bytes, OutMessage]] = OrderedDict()
        self.published = 0
        self.refused = 0

    def _authorised(self, agency: str, request: Request) -> bool:
        expected = self._tokens.get(agency)
        if expected is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {expected}".encode())

    async def _body(self, request: Request) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _decision(self, agency: str, request: Request) -> AgencyDecision:
        """The checked decision of a callback; raise _Refused with the answer to give otherwise."""
        if agency not in self._agencies:
            known = ", ".join(sorted(self._agencies))
            raise _Refused(_problem("unknown-agency", detail=f"no agency {agency!r}; known: {known}"))
        if not self._authorised(agency, request):
            raise _Refused(_problem("unauthorised", detail=f"a valid bearer token for {agency} is required",
                                    headers={"WWW-Authenticate": "Bearer"}))
        raw = await self._body(request)
        if raw is None:
            raise _Refused(_problem("too-large", detail=f"the body exceeds {MAX_BODY_BYTES} bytes"))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Refused(_problem("invalid-json", detail=f"not JSON: {exc}")) from exc
        if not isinstance(body, dict):
            raise _Refused(_problem("invalid-json", detail="the decision must be a JSON object"))
        try:
            return parse_decision(body, agency=agency, received_at=self.now_ms())
        except DecisionFormatError as exc:
            log.info("callback_refused", agency=agency, errors=len(exc.errors))
            raise _Refused(_problem("invalid-decision", detail=str(exc),
                                    errors=[{"path": e.path, "message": e.message} for e in exc.errors])) from exc

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
            content = orjson.dumps([decision["submission_id"], decision["version"], decision["items"]])
            key = f"{agency}:{decision['decision_id']}"
            message, status = self._message(key, decision, content)
        except _Refused as refused:
            self.refused += 1
            return refused.response
        structlog.contextvars.bind_contextvars(
            submission_id=decision["submission_id"], version=decision["version"], agency=agency
        )
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

    def _remember(self, key: str, content: bytes, message: OutMessage) -> None:
        self._seen[key] = (content, message)
        self._seen.move_to_end(key)
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)


def callback_routes(
    publish: Publish,
    *,
    agencies: Collection[str] = AGENCIES,
    tokens: Mapping[str, str] | None = None,
    now_ms: Callable[[], int] = now_ms,
    topic_for: Callable[[str], str] = decisions_topic,
) -> list[Route]:
    """Starlette routes of the callback endpoint; mount them in the ingress app.

    ``publish`` writes one record and returns once Kafka has it (the ingress's
    ``Producer.send``); ``tokens`` maps an agency to the bearer token it must present (agencies
    absent from it are not asked for one: put the endpoint behind mTLS then); ``topic_for``
    names an agency's decisions topic (tests use their own topics).
    """
    endpoint = DecisionCallback(publish, agencies=agencies, tokens=tokens, now_ms=now_ms, topic_for=topic_for)
    return [Route(callback_path("{agency}"), endpoint.receive, methods=["POST"])]
