"""The JSON the hub's HTTP API answers with, as types: what ``broker._view`` renders, the ingress's receipts,
problem details, the health answers, the published key set, the webhook registration.

The OpenAPI description (``broker._openapi``) is generated from these and from the records of
``schemas._records``; ``tests/test_openapi.py`` checks real answers of a running hub against it, and that the
rendered release response has exactly the record's fields (times as ISO 8601 strings instead of epoch ms).
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from broker._webhook_guard import MAX_URL_LENGTH
from broker._webhooks import MAX_SECRET, MIN_SECRET
from schemas import HoldReason, ItemDecision, Outcome, RoutingReason, SubmissionKind
from schemas._jsonschema import JsonSchema

__all__ = [
    "Accepted",
    "DecisionReceipt",
    "Duplicate",
    "Health",
    "Jwks",
    "Pending",
    "Problem",
    "Readiness",
    "RenderedAgencyOutcome",
    "RenderedResponse",
    "StatusAnswer",
    "TimelineAnswer",
    "Timestamp",
    "WebhookRegistered",
    "WebhookRegistration",
    "WebhookView",
]

#: Epoch milliseconds rendered for people: ISO 8601 in UTC with milliseconds (``broker._view.iso``).
Timestamp = Annotated[str, JsonSchema(format="date-time")]

SubmissionStatus = Literal["accepted", "routed", "escalated", "released", "held", "refused", "cancelled"]


class Links(TypedDict):
    self: str
    response: str
    timeline: str


class Accepted(TypedDict):
    """202: the submission is durably on nsw.submissions (acknowledged by every in-sync replica)."""

    submission_id: str
    status: Literal["accepted"]
    version: int
    kind: SubmissionKind
    trader_reference: str
    links: Links


class Duplicate(TypedDict):
    """200: the same declaration was lodged before; nothing new is processed."""

    submission_id: str
    status: SubmissionStatus
    version: int
    trader_reference: str
    duplicate: Literal[True]
    detail: str
    links: Links


class ProblemError(TypedDict):
    """One finding: what is wrong, and where (XML line and path, Avro field path, JSON pointer)."""

    message: str
    line: NotRequired[int | None]
    path: NotRequired[str | None]


class Problem(TypedDict):
    """RFC 9457 problem details; ``type`` is ``https://nsw-broker.dev/problems/<slug>``."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemError]
    instance: NotRequired[str]


class RenderedAgencyOutcome(TypedDict):
    agency: str
    outcome: Outcome
    decision_id: str
    decided_at: Timestamp
    carried_from_version: NotRequired[int | None]
    agency_reference: NotRequired[str | None]


class RenderedItemReason(TypedDict):
    agency: str
    outcome: Outcome
    code: str
    reason: str
    hold_reason: NotRequired[HoldReason | None]
    valid_until: NotRequired[str | None]


class RenderedItemOutcome(TypedDict):
    sequence: int
    outcome: Outcome
    reasons: list[RenderedItemReason]


class RenderedResponse(TypedDict):
    """The release response (``schemas.ReleaseResponse``) with its times in ISO 8601 (``render_response``)."""

    response_id: str
    submission_id: str
    version: int
    response_version: int
    issued_at: Timestamp
    received_at: Timestamp
    trader_reference: str
    declarant_id: str
    outcome: Outcome
    function_code: str
    agencies: list[RenderedAgencyOutcome]
    items: list[RenderedItemOutcome]
    invalidated: NotRequired[bool]
    trader: NotRequired[str]


class RoutingAnswer(TypedDict):
    routed_at: Timestamp
    #: Agency -> why it must decide (one reason per item and rule).
    agencies: dict[str, list[RoutingReason]]


class DecisionAnswer(TypedDict):
    decision_id: str
    agency_reference: str | None
    decided_at: Timestamp
    items: list[ItemDecision]


class EscalationAnswer(TypedDict):
    deadline_at: Timestamp
    escalated_at: Timestamp


class DeliveryAnswer(TypedDict):
    """A webhook delivery of one of the submission's responses."""

    delivery_id: str | None
    version: int | None
    response_version: int | None
    status: Literal["pending", "delivered", "failed"] | None
    attempts: int
    last_error: str | None
    created_at: Timestamp | None
    delivered_at: Timestamp | None
    failed_at: Timestamp | None


class StatusAnswer(TypedDict):
    """``GET /v1/submissions/{id}`` (``broker._view.render_status``)."""

    submission_id: str
    version: int
    status: SubmissionStatus
    received_at: Timestamp
    routing: RoutingAnswer | None
    pending_agencies: list[str]
    decisions: dict[str, DecisionAnswer]
    response: RenderedResponse | None
    links: Links
    trader_reference: NotRequired[str]
    escalated_agencies: NotRequired[dict[str, EscalationAnswer]]
    webhook_deliveries: NotRequired[list[DeliveryAnswer]]


class TimelineEvent(TypedDict):
    at: Timestamp | None
    step: str
    version: int
    agency: NotRequired[str]
    detail: NotRequired[str]
    delivery_id: NotRequired[str]
    attempts: NotRequired[int]
    error: NotRequired[str | None]


class TimelineAnswer(TypedDict):
    """``GET /v1/submissions/{id}/timeline`` (``broker._view.render_timeline``)."""

    submission_id: str
    status: SubmissionStatus
    events: list[TimelineEvent]


class Pending(TypedDict):
    """202 of ``GET .../response``: no final answer yet (Retry-After)."""

    submission_id: str
    status: SubmissionStatus
    response: None


class Health(TypedDict):
    status: Literal["ok"]


class Readiness(TypedDict):
    ready: bool
    kafka: Literal["reachable", "not yet"]
    waiting_for: list[str]
    #: Topic reader -> "reading" or what is wrong with it.
    tails: dict[str, str]


class PublicJwk(TypedDict):
    """An Ed25519 public key (RFC 8037) that signs release responses."""

    kty: str
    kid: str
    crv: NotRequired[str]
    x: NotRequired[str]
    alg: NotRequired[str]
    use: NotRequired[str]


class Jwks(TypedDict):
    keys: list[PublicJwk]


class WebhookRegistration(TypedDict):
    """``PUT /v1/webhooks/{trader}``: where to POST release responses, and the HMAC secret that signs them."""

    url: Annotated[str, JsonSchema(format="uri", maxLength=MAX_URL_LENGTH)]
    secret: Annotated[str, JsonSchema(minLength=MIN_SECRET, maxLength=MAX_SECRET)]


class WebhookRegistered(TypedDict):
    trader: str
    url: str


class WebhookView(TypedDict):
    trader: str
    url: str
    registered_at: int


class DecisionReceipt(TypedDict):
    """202 of the agency callback: the decision is on the agency's decisions topic."""

    decision_id: str
    status: Literal["accepted", "duplicate"]
