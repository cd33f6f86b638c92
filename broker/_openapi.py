"""The hub's OpenAPI 3.1 description (``GET /openapi.json``, ``nsw openapi``), generated from the typed models.

Bodies are described from the TypedDicts the code uses (``schemas._records``, ``broker._api_types``,
``adapters._agency_api``) by ``schemas._jsonschema``; problem answers from the problem tables
(``broker._problems.PROBLEM_TYPES``, the callback's own ``adapters._callback._TITLES``), each response listing
the problem types it may carry. Every operation the ingress process serves outside ``/console`` is here:
``tests/test_openapi.py`` compares the document with the running app's routes, validates it with
openapi-spec-validator and fuzzes the live hub against it with Schemathesis.

Content negotiation (``Accept``) is described as the response media types of each operation: OpenAPI ignores
``Accept``, ``Content-Type`` and ``Authorization`` header parameters, so they are not listed as parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any, Final

from adapters._agency_api import DecisionDocument
from adapters._callback import _TITLES as CALLBACK_PROBLEMS
from broker._api_types import (
    Accepted,
    DecisionReceipt,
    Duplicate,
    Health,
    Jwks,
    Pending,
    Problem,
    Readiness,
    RenderedResponse,
    StatusAnswer,
    TimelineAnswer,
    WebhookRegistered,
    WebhookRegistration,
    WebhookView,
)
from broker._problems import PROBLEM_BASE, PROBLEM_TYPES
from schemas import ERROR_TYPES
from schemas._avro_submission import trader_schemas
from schemas._jsonschema import SchemaSet

__all__ = ["OPERATIONS", "openapi_document"]

#: Every (method, path) the document describes; tests/test_openapi.py holds the app's routes against it.
OPERATIONS: Final = frozenset({
    ("post", "/v1/submissions"),
    ("get", "/v1/submissions/{submission_id}"),
    ("get", "/v1/submissions/{submission_id}/response"),
    ("get", "/v1/submissions/{submission_id}/timeline"),
    ("put", "/v1/webhooks/{trader}"),
    ("get", "/v1/webhooks/{trader}"),
    ("post", "/v1/agencies/{agency}/decisions"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
})

JSON: Final = "application/json"
PROBLEM_JSON: Final = "application/problem+json"
TRADER: Final[list[dict[str, list[str]]]] = [{"traderKey": []}]
PUBLIC: Final[list[dict[str, list[str]]]] = []
#: Refusals any authenticated trader operation may give (broker._auth.AuthMiddleware).
AUTH_PROBLEMS: Final = ("unauthenticated", "rate-limited")
#: Refusals of the HTTP layer below the app, on any operation (broker._http).
WIRE_PROBLEMS: Final = ("request-timeout", "header-too-large", "internal-error")
SUBMIT_PROBLEMS: Final = (*ERROR_TYPES, "unsupported-media-type", "too-many-in-flight", "overloaded", "unavailable",
                          "bad-request", "unknown-reference", "reference-conflict", "bad-idempotency-key",
                          "idempotency-key-reused", "idempotency-in-flight")


def _problems(slugs: Iterable[str], titles: dict[str, tuple[int, str]], base: dict[str, Any]) -> dict[str, Any]:
    """Responses by status, each a problem whose ``type`` is one of the slugs answered with that status."""
    by_status: dict[int, list[str]] = {}
    for slug in dict.fromkeys(slugs):
        by_status.setdefault(titles[slug][0], []).append(slug)
    responses = dict(base)
    for status, found in sorted(by_status.items()):
        schema = {"allOf": [{"$ref": "#/components/schemas/Problem"},
                            {"properties": {"type": {"enum": [PROBLEM_BASE + slug for slug in found]},
                                            "status": {"const": status}}}]}
        described = "; ".join(f"`{slug}`: {titles[slug][1]}" for slug in found)
        responses[str(status)] = {"description": described, "content": {PROBLEM_JSON: {"schema": schema}}}
    return responses


def _json(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _trader_op(summary: str, responses: dict[str, Any], slugs: Iterable[str], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "security": TRADER, **more,
            "responses": _problems((*slugs, *AUTH_PROBLEMS, *WIRE_PROBLEMS), PROBLEM_TYPES, responses)}


def _public_op(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "security": PUBLIC, **more,
            "responses": _problems(WIRE_PROBLEMS, PROBLEM_TYPES, responses)}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


def _sample(name: str) -> str:
    return resources.files("schemas").joinpath("samples", name).read_text(encoding="utf-8")


@cache
def openapi_document() -> dict[str, Any]:
    models = SchemaSet()
    ref = models.describe
    sid = _path_param("submission_id", "The id the ingress answered with (``submission_id``)")
    retry_after = {"Retry-After": {"description": "Seconds to wait before asking again",
                                   "schema": {"type": "integer"}}}
    location = {"Location": {"description": "The submission's status", "schema": {"type": "string"}}}
    body_text = {"type": "string"}
    avro = {"type": "string", "format": "binary",
            "description": "Avro single-object encoding (0xC3 0x01, the writer schema's CRC-64-AVRO fingerprint, "
                           "then the record) of a DeclarationSubmission written with one of the trader schemas "
                           "in x-avro-writer-schemas (the package's schemas/avro/trader/<version>.avsc)",
            "x-avro-writer-schemas": {w.version: {"fingerprint": w.fingerprint.hex()}
                                      for w in trader_schemas().writers}}
    paths: dict[str, dict[str, Any]] = {
        "/v1/submissions": {"post": _trader_op(
            "Lodge a declaration, an amendment or a cancellation",
            {"202": _json("Accepted: durably on nsw.submissions", ref(Accepted), location),
             "200": _json("Lodged before (a duplicate), or the stored answer of an earlier request with this "
                          "Idempotency-Key (header Idempotent-Replayed)", {"anyOf": [ref(Duplicate), ref(Accepted)]})},
            SUBMIT_PROBLEMS,
            description="A WCO Data Model declaration in XML (a bundle's namespace: ``nsw schemas``), or the same "
                        "as an Avro single-object encoded ``Submission`` record (``avro/binary``, writer schema "
                        "fingerprint first). 202 only once Kafka has acknowledged it. Refusals name the element "
                        "and line (XML) or the field path (Avro) in ``errors``.",
            parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                         "description": "Replays the first answer for a repeat of the same body; 422 for another "
                                        "body, 409 while the first is still being processed",
                         "schema": {"type": "string", "minLength": 1, "maxLength": 255}}],
            requestBody={"required": True, "content": {
                "application/xml": {"schema": {**body_text, "contentMediaType": "application/xml"},
                                    "examples": {"plain-goods": {"summary": "An import customs alone decides",
                                                                 "value": _sample("plain-goods.xml")}}},
                "text/xml": {"schema": {**body_text, "contentMediaType": "text/xml"}},
                "avro/binary": {"schema": avro},
                "application/avro": {"schema": avro},
            }})},
        "/v1/submissions/{submission_id}": {"get": _trader_op(
            "Status, routing, per-agency decisions and, once final, the release response",
            {"200": _json("The submission as the hub knows it", ref(StatusAnswer))},
            ("forbidden", "not-found"), parameters=[sid])},
        "/v1/submissions/{submission_id}/response": {"get": _trader_op(
            "The release response, JSON (signed in NSW-Response-JWS), WCO DM XML or a compact JWS by Accept",
            {"200": {"description": "The release response. ``Accept: application/xml`` gives the WCO DM "
                                    "Response, ``application/jose`` the compact JWS alone (when the hub signs)",
                     "headers": {"NSW-Response-JWS": {"description": "Compact JWS (EdDSA) of the JSON body; keys "
                                                                     "at /.well-known/jwks.json",
                                                      "schema": {"type": "string"}}},
                     "content": {JSON: {"schema": ref(RenderedResponse)},
                                 "application/xml": {"schema": body_text},
                                 "application/jose": {"schema": {"type": "string",
                                                                 "pattern": r"^[\w-]+\.[\w-]+\.[\w-]+$"}}}},
             "202": _json("No final answer yet (after waiting ``wait`` seconds)", ref(Pending), retry_after)},
            ("forbidden", "not-found", "bad-request"),
            parameters=[sid, {"name": "wait", "in": "query", "required": False,
                              "description": "Long-poll: seconds to wait for a final answer (at most 60 are waited); "
                                             "anything but a finite number >= 0 is a 400",
                              "schema": {"type": "number", "minimum": 0}}])},
        "/v1/submissions/{submission_id}/timeline": {"get": _trader_op(
            "Technical steps and business decisions of every version, in time order",
            {"200": _json("The timeline", ref(TimelineAnswer))}, ("forbidden", "not-found"), parameters=[sid])},
        "/v1/webhooks/{trader}": {
            "put": _trader_op(
                "Register (or replace) the trader's webhook for release responses",
                {"200": _json("Registered", ref(WebhookRegistered))},
                ("forbidden", "too-large", "bad-webhook", "webhook-url-refused", "unavailable"),
                description="Release responses are POSTed to ``url``, signed with ``secret`` "
                            "(``NSW-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>``).",
                parameters=[_path_param("trader", "The trader the API key identifies")],
                requestBody={"required": True, "content": {JSON: {"schema": ref(WebhookRegistration), "examples": {
                    "https": {"summary": "An HTTPS receiver (here a documentation address, which the policy refuses)",
                              "value": {"url": "https://203.0.113.10/nsw", "secret": "a-secret-of-16-or-more"}}}}}}),
            "get": _trader_op(
                "The trader's webhook (without its secret)", {"200": _json("Registered webhook", ref(WebhookView))},
                ("forbidden", "not-found"), parameters=[_path_param("trader", "The trader the API key identifies")]),
        },
        "/v1/agencies/{agency}/decisions": {"post": {
            "summary": "An agency's asynchronous decision on a request the hub sent it",
            "description": "The agency is the key's, never the body's; the decision must answer the request the "
                           "hub has outstanding for it (``request_id``, submission, version, items asked).",
            "security": [{"agencyKey": []}],
            "parameters": [_path_param("agency", "The agency, as configured (refdata/agencies.json)")],
            "requestBody": {"required": True, "content": {JSON: {"schema": ref(DecisionDocument), "examples": {
                "release": {"summary": "Release of item 1 (the ids are those of the request being answered)",
                            "value": {"decision_id": "SPS-2026-000123", "request_id": "0E2NJY3PDQ19:1:sps:9f3c",
                                      "submission_id": "0E2NJY3PDQ19BB4N7C7Y6X4T38", "version": 1,
                                      "agency_reference": "SPS/2026/000123",
                                      "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01",
                                                 "reason": "Phytosanitary certificate checked"}]}}}}}},
            "responses": _problems(CALLBACK_PROBLEMS, CALLBACK_PROBLEMS, _problems(
                WIRE_PROBLEMS, PROBLEM_TYPES,
                {"202": _json("On the agency's decisions topic", ref(DecisionReceipt))})),
        }},
        "/.well-known/jwks.json": {"get": _public_op(
            "The public keys that sign release responses (RFC 7517)", {"200": _json("Key set", ref(Jwks))})},
        "/healthz": {"get": _public_op("Liveness", {"200": _json("Alive", ref(Health))})},
        "/readyz": {"get": _public_op(
            "Readiness: Kafka reachable, every service assigned, every topic reader reading",
            {"200": _json("Ready", ref(Readiness)), "503": _json("Not ready (the body says what is waited for)",
                                                                 ref(Readiness))})},
        "/metrics": {"get": _public_op("Prometheus metrics", {"200": {
            "description": "Prometheus text exposition format", "content": {"text/plain": {"schema": body_text}}}})},
        "/openapi.json": {"get": _public_op("This description", {"200": _json("OpenAPI 3.1", {"type": "object"})})},
    }
    ref(Problem)
    described = {(method, path) for path, item in paths.items() for method in item}
    assert described == OPERATIONS, f"paths and OPERATIONS disagree: {described ^ OPERATIONS}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nsw-broker",
            "version": "1",
            "description": "National Single Window message hub: lodge a WCO Data Model declaration once, get one "
                           "release response. Refusals are RFC 9457 problem details "
                           f"(``{PROBLEM_BASE}<slug>``).",
        },
        "paths": paths,
        "components": {
            "schemas": models.components,
            "securitySchemes": {
                "traderKey": {"type": "http", "scheme": "bearer",
                              "description": "A trader's API key, ``nsw_<key id>_<secret>`` (``nsw keys create "
                                             "--trader T``; the development trader's in .nsw/dev-trader.key)"},
                "agencyKey": {"type": "http", "scheme": "bearer",
                              "description": "An agency's callback key (``nsw keys create --agency A``): it "
                                             "authenticates that agency's decisions and nothing else"},
            },
        },
    }
