"""RFC 9457 problem details for every refusal the ingress gives."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.responses import Response

from schemas import ERROR_TYPES

PROBLEM_BASE = "https://nsw-broker.dev/problems/"

#: Problem types the API can answer with: slug -> (status, title). Documented in the README.
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    **{slug: (status, title) for slug, (title, status) in ERROR_TYPES.items()},
    "unsupported-media-type": (415, "The hub accepts application/xml and avro/binary"),
    "not-found": (404, "No such submission"),
    "unauthenticated": (401, "Authentication required"),
    "forbidden": (403, "This belongs to another trader"),
    "rate-limited": (429, "Too many requests"),
    "bad-webhook": (422, "The webhook registration is not valid"),
    "webhook-url-refused": (422, "The webhook URL points where the hub may not send requests"),
    "reference-conflict": (409, "The trader reference is already used by another declaration"),
    "unknown-reference": (422, "No declaration with this declarant and trader reference"),
    "bad-idempotency-key": (400, "The Idempotency-Key header is malformed"),
    "idempotency-key-reused": (422, "The Idempotency-Key was used with a different request"),
    "idempotency-in-flight": (409, "A request with this Idempotency-Key is still being processed"),
    "overloaded": (503, "The hub is at capacity; retry after the indicated delay"),
    "unavailable": (503, "The hub cannot reach Kafka; nothing was accepted"),
    "too-many-in-flight": (429, "Too many requests of this trader are still being processed"),
    "request-timeout": (408, "The request was not received in time"),
    "header-too-large": (431, "The request head (request line and headers) is too large"),
    "bad-request": (400, "The request is not valid HTTP"),
    "no-such-resource": (404, "No such resource"),
    "method-not-allowed": (405, "The resource does not accept this method"),
    "internal-error": (500, "The hub could not process the request"),
}


def problem_body(slug: str, *, detail: str, status: int | None = None) -> bytes:
    """The problem+json body alone, for answers written below Starlette (the HTTP protocol)."""
    default_status, title = PROBLEM_TYPES[slug]
    return orjson.dumps({"type": PROBLEM_BASE + slug, "title": title, "status": status or default_status,
                         "detail": detail, "errors": []})


def problem(
    slug: str,
    *,
    detail: str,
    errors: Iterable[dict[str, Any]] = (),
    instance: str | None = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    default_status, title = PROBLEM_TYPES[slug]
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status or default_status,
        "detail": detail,
        "errors": list(errors),
    }
    if instance is not None:
        body["instance"] = instance
    return Response(
        orjson.dumps(body), status_code=body["status"], media_type="application/problem+json", headers=headers
    )
