"""The JSON contract between the hub and an agency's REST system (HTTP bridge and callbacks).

Pure: values in, values out; the bridge (``adapters._bridge``) and the callback endpoint
(``adapters._callback``) add HTTP.

Request: the hub POSTs one **agency message** per agency request (``Content-Type:
application/json``, header ``Idempotency-Key: <request_id>``)::

    {"request_id": "<submission_id>:<version>:<agency>:<nonce>",  # stable: a redelivery has the same id
     "submission_id": "01J...", "version": 2, "agency": "sps",
     "kind": "DECLARATION" | "AMENDMENT" | "CANCELLATION",  # CANCELLATION: stop work, items is []
     "requested_at": 1767225600000,                         # epoch ms
     "trader_reference": "LRN-...", "declaration_type": "IMZ", "declarant_id": "GB123...",
     "export_country": "NL", "destination_country": "GB",
     "parties": [{"role": "importer", "id": "...", "name": "...", "country": "GB"}],
     "authorisations": [{"category_code": "AEOC", "holder_id": "GB123..."}],
     "items": [{"sequence": 1, "commodity_code": "06029050", "description": "Live plants",
                "origin_country": "NL", "cas_numbers": [],
                "documents": [{"code": "N851", "category_code": "N", "type_code": "851", "id": "NL-PC-1"}],
                "quantity": 120.0, "quantity_unit": "NAR", "net_mass_kg": 80.5, "value": 900.0,
                "currency": "GBP"}],
     "reasons": [{"item": 1, "rule": "SPS-PLANTS", "why": "HS chapter 06 (live plants) ..."}],
     "reply_to": "https://hub.example/v1/agencies/sps/decisions"}   # null when the hub has no callback

The agency answers either
    200 with a **decision** (synchronous), or
    202 (asynchronous; any body is ignored), and later POSTs the decision to ``reply_to``.

Decision (body of a 200 answer, or of a callback)::

    {"decision_id": "SPS-2026-000123",        # optional in a 200 answer; strongly advised in a callback
     "request_id": "01J...:2:sps:9f3c...",     # the request answered: required in a callback, optional in a
                                               # 200 answer (must match); the hub refuses any other
     "submission_id": "01J...", "version": 2,  # required in a callback; in a 200 answer optional, must match
     "decided_at": 1767225600000,              # optional, epoch ms; defaults to the time the hub received it
     "agency_reference": "SPS/2026/000123",    # optional: the agency's case, permit or notification number
     "items": [{"sequence": 1, "outcome": "RELEASE" | "HOLD" | "REFUSE", "code": "C01", "reason": "...",
                "hold_reason": "DOCUMENTS_REQUIRED",  # HOLD only, optional (OTHER when left out): also
                                                      # INSPECTION, IPR_SUSPENSION, LICENCE_REQUIRED, ESCALATED
                "valid_until": "2026-12-10",        # optional ISO 8601 date until which the decision stands
                "selected_by": ["PROFILE-7"]}]}     # optional: ids of the risk profiles or rules that selected
                                                    # the item (at most 32, each 1 to 64 characters)

``items`` is not empty, each sequence appears once, and the code's first letter agrees with the
outcome (C clear / release, H hold, N refuse: one decision vocabulary for every agency). In a 200
answer every sequence must be one the agency was asked about.

``decided_by`` (the officer who decided, in the Avro record) is **refused** here (any value but null): only the
hub's console sets it, for officers it has signed in; an agency system naming an officer would be impersonating
one. An agency keeps its own officers' names in its own records and may quote its case number in
``agency_reference``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Collection
from datetime import date
from typing import Annotated, Any, Final, Literal, NotRequired, TypedDict

import orjson

from adapters.errors import DecisionFormatError, FieldError
from schemas import AgencyDecision, AgencyRequest, HoldReason, ItemDecision, Outcome
from schemas._jsonschema import JsonSchema

CODE_LETTER: Final[dict[str, str]] = {"RELEASE": "C", "HOLD": "H", "REFUSE": "N"}
HOLD_REASONS: Final[frozenset[str]] = frozenset(
    {"DOCUMENTS_REQUIRED", "INSPECTION", "IPR_SUSPENSION", "LICENCE_REQUIRED", "ESCALATED", "OTHER"})
MAX_ITEMS: Final = 10_000
MAX_TEXT: Final = 2_000
#: ``selected_by``: how many ids an item may name, and how long each may be.
MAX_SELECTED_BY: Final = 32
MAX_ID: Final = 64


#: A non-empty text of at most MAX_TEXT characters (codes, reasons, ids).
_Text = Annotated[str, JsonSchema(minLength=1, maxLength=MAX_TEXT, pattern=r"\S")]


class ItemDecisionDocument(TypedDict):
    """One item's decision; the code's first letter agrees with the outcome (C release, H hold, N refuse)."""

    sequence: Annotated[int, JsonSchema(minimum=1, maximum=2**63 - 1)]
    outcome: Outcome
    code: _Text
    reason: _Text
    hold_reason: NotRequired[HoldReason | None]
    valid_until: NotRequired[Annotated[str, JsonSchema(format="date")] | None]
    selected_by: NotRequired[Annotated[list[Annotated[str, JsonSchema(minLength=1, maxLength=MAX_ID, pattern=r"\S")]],
                                       JsonSchema(maxItems=MAX_SELECTED_BY)] | None]


class DecisionDocument(TypedDict):
    """An agency's decision as it POSTs it to its callback (see the module docstring); ``decided_by`` is refused."""

    submission_id: _Text
    version: Annotated[int, JsonSchema(minimum=1, maximum=2**63 - 1)]
    request_id: _Text
    items: Annotated[list[ItemDecisionDocument], JsonSchema(minItems=1, maxItems=MAX_ITEMS)]
    decision_id: NotRequired[_Text | None]
    decided_at: NotRequired[Annotated[int, JsonSchema(minimum=0, maximum=2**63 - 1)] | None]
    agency_reference: NotRequired[_Text | None]
    agency: NotRequired[str | None]
    decided_by: NotRequired[Literal[None]]


def callback_path(agency: str) -> str:
    return f"/v1/agencies/{agency}/decisions"


def callback_url(base_url: str, agency: str) -> str:
    """Where ``agency`` POSTs asynchronous decisions, given the hub's public base URL."""
    return base_url.rstrip("/") + callback_path(agency)


def agency_message(request: AgencyRequest, *, reply_to: str | None) -> dict[str, Any]:
    """The agency's own JSON message for one hub request (see the module docstring)."""
    return {
        "request_id": request["request_id"],
        "submission_id": request["submission_id"],
        "version": request["version"],
        "agency": request["agency"],
        "kind": request.get("kind", "DECLARATION"),
        "direction": request.get("direction", ""),
        "additional_type": request.get("additional_type", ""),
        "requested_at": request["requested_at"],
        "trader_reference": request["trader_reference"],
        "declaration_type": request["declaration_type"],
        "declarant_id": request["declarant_id"],
        "export_country": request["export_country"],
        "destination_country": request["destination_country"],
        "parties": [dict(p) for p in request["parties"]],
        "authorisations": [dict(a) for a in request["authorisations"]],
        "items": [
            {
                "sequence": item["sequence"],
                "commodity_code": item["commodity_code"],
                "description": item["description"],
                "origin_country": item["origin_country"],
                "cas_numbers": list(item["cas_numbers"]),
                "documents": [
                    {"code": d["category_code"] + d["type_code"], "category_code": d["category_code"],
                     "type_code": d["type_code"], "id": d["id"]}
                    for d in item["documents"]
                ],
                "quantity": item["quantity"],
                "quantity_unit": item["quantity_unit"],
                "net_mass_kg": item["net_mass_kg"],
                "value": item["value"],
                "currency": item["currency"],
                "base_value": item.get("base_value"),
                "cus_code": item.get("cus_code"),
                "procedure_codes": list(item.get("procedure_codes", [])),
            }
            for item in request["items"]
        ],
        "reasons": [dict(r) for r in request["reasons"]],
        "reply_to": reply_to,
    }


def _text(errors: list[FieldError], path: str, value: object, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(path, "must be a non-empty string"))
        return None
    if len(value) > MAX_TEXT:
        errors.append(FieldError(path, f"must be at most {MAX_TEXT} characters"))
        return None
    return value


def _int(errors: list[FieldError], path: str, value: object, *, minimum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(FieldError(path, "must be an integer"))
        return None
    if value < minimum or value > 2**63 - 1:
        errors.append(FieldError(path, f"must be an integer >= {minimum}"))
        return None
    return value


def _items(errors: list[FieldError], raw: object, allowed: Collection[int] | None) -> list[ItemDecision]:
    if not isinstance(raw, list) or not raw:
        errors.append(FieldError("/items", "must be a non-empty array of item decisions"))
        return []
    if len(raw) > MAX_ITEMS:
        errors.append(FieldError("/items", f"must have at most {MAX_ITEMS} entries"))
        return []
    items: list[ItemDecision] = []
    seen: set[int] = set()
    for n, entry in enumerate(raw):
        at = f"/items/{n}"
        if not isinstance(entry, dict):
            errors.append(FieldError(at, "must be an object"))
            continue
        sequence = _int(errors, f"{at}/sequence", entry.get("sequence"), minimum=1)
        outcome = entry.get("outcome")
        if outcome not in CODE_LETTER:
            errors.append(FieldError(f"{at}/outcome", "must be RELEASE, HOLD or REFUSE"))
        code = _text(errors, f"{at}/code", entry.get("code"))
        reason = _text(errors, f"{at}/reason", entry.get("reason"))
        if code is not None and outcome in CODE_LETTER and not code.startswith(CODE_LETTER[outcome]):
            errors.append(FieldError(f"{at}/code", f"a {outcome} code starts with {CODE_LETTER[outcome]}"))
        if sequence is not None:
            if sequence in seen:
                errors.append(FieldError(f"{at}/sequence", f"item {sequence} is decided twice"))
            elif allowed is not None and sequence not in allowed:
                errors.append(FieldError(f"{at}/sequence", f"item {sequence} was not in the request"))
            seen.add(sequence)
        hold_reason = _hold_reason(errors, at, outcome, entry.get("hold_reason"))
        valid_until = _date(errors, f"{at}/valid_until", entry.get("valid_until"))
        selected_by = _ids(errors, f"{at}/selected_by", entry.get("selected_by"))
        if sequence is not None and outcome in CODE_LETTER and code is not None and reason is not None:
            chosen: Outcome = outcome
            item: ItemDecision = {"sequence": sequence, "outcome": chosen, "code": code, "reason": reason,
                                  "hold_reason": hold_reason, "valid_until": valid_until}
            if selected_by:
                item["selected_by"] = selected_by
            items.append(item)
    return items


def _ids(errors: list[FieldError], path: str, value: object) -> list[str]:
    """An optional list of short ids (profile or rule ids); [] when absent."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SELECTED_BY:
        errors.append(FieldError(path, f"must be an array of at most {MAX_SELECTED_BY} strings"))
        return []
    ids: list[str] = []
    for n, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip() or len(entry) > MAX_ID:
            errors.append(FieldError(f"{path}/{n}", f"must be a non-empty string of at most {MAX_ID} characters"))
        else:
            ids.append(entry)
    return ids


def _hold_reason(errors: list[FieldError], at: str, outcome: object, value: object) -> HoldReason | None:
    """A HOLD's reason in the shared vocabulary (OTHER when the agency gives none); nothing for other outcomes."""
    if outcome != "HOLD":
        if value is not None:
            errors.append(FieldError(f"{at}/hold_reason", "only a HOLD has a hold reason"))
        return None
    if value is None:
        return "OTHER"
    if value not in HOLD_REASONS:
        errors.append(FieldError(f"{at}/hold_reason", f"must be one of {', '.join(sorted(HOLD_REASONS))}"))
        return None
    reason: HoldReason = value  # type: ignore[assignment]  # checked against the vocabulary above
    return reason


def _date(errors: list[FieldError], path: str, value: object) -> str | None:
    """An optional ISO 8601 calendar date (YYYY-MM-DD), returned as given."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 10:
        with contextlib.suppress(ValueError):
            date.fromisoformat(value)
            return value
    errors.append(FieldError(path, "must be an ISO 8601 date, YYYY-MM-DD"))
    return None


def _no_officer(errors: list[FieldError], body: dict[str, Any]) -> None:
    """An agency system may not name the officer who decided: that would be impersonating one of the console's."""
    if body.get("decided_by") is not None:
        errors.append(FieldError("/decided_by", "only the hub's console names the officer who decided; an agency "
                                                "system must leave it out"))


def content_id(agency: str, submission_id: str, version: int, items: list[ItemDecision]) -> str:
    """A decision id derived from the content, for decisions that do not bring their own."""
    digest = hashlib.sha256(orjson.dumps([agency, submission_id, version, items])).hexdigest()[:24]
    return f"{submission_id}:{version}:{agency}:{digest}"


def parse_decision(
    body: object,
    *,
    agency: str,
    received_at: int,
    submission_id: str | None = None,
    version: int | None = None,
    sequences: Collection[int] | None = None,
    default_id: str | None = None,
    request_id: str | None = None,
) -> AgencyDecision:
    """Check a decision document and turn it into an AgencyDecision; raise DecisionFormatError.

    ``submission_id``/``version`` given (a synchronous answer to a known request): the document
    may leave them out but must not contradict them. Not given (a callback): they are required.
    ``sequences`` limits the items to those asked about. ``default_id`` names a decision that has
    no ``decision_id``; without it the id is derived from the content, so a repeat has the same id.
    ``request_id`` given (a synchronous answer): the document may leave it out but must not contradict
    it; not given (a callback): the document must quote the request it answers.
    """
    if not isinstance(body, dict):
        raise DecisionFormatError([FieldError("", "the decision must be a JSON object")])
    errors: list[FieldError] = []
    sid = body.get("submission_id")
    if submission_id is None or sid is not None:
        sid = _text(errors, "/submission_id", sid)
        if submission_id is not None and sid is not None and sid != submission_id:
            errors.append(FieldError("/submission_id", f"answers {sid}, the request was for {submission_id}"))
    else:
        sid = submission_id
    ver = body.get("version")
    if version is None or ver is not None:
        ver = _int(errors, "/version", ver, minimum=1)
        if version is not None and ver is not None and ver != version:
            errors.append(FieldError("/version", f"answers version {ver}, the request was for {version}"))
    else:
        ver = version
    rid = body.get("request_id")
    if request_id is None or rid is not None:
        rid = _text(errors, "/request_id", rid)
        if request_id is not None and rid is not None and rid != request_id:
            errors.append(FieldError("/request_id", f"answers request {rid}, the request was {request_id}"))
    else:
        rid = request_id
    decision_id = _text(errors, "/decision_id", body.get("decision_id"), required=False)
    decided_at = received_at
    if body.get("decided_at") is not None:
        decided_at = _int(errors, "/decided_at", body.get("decided_at"), minimum=0) or received_at
    items = _items(errors, body.get("items"), sequences)
    reference = _text(errors, "/agency_reference", body.get("agency_reference"), required=False)
    _no_officer(errors, body)
    if errors or sid is None or ver is None:
        raise DecisionFormatError(errors)
    items.sort(key=lambda i: i["sequence"])
    return {
        "decision_id": decision_id or default_id or content_id(agency, sid, ver, items),
        "submission_id": sid,
        "version": ver,
        "agency": agency,
        "decided_at": decided_at,
        "items": items,
        "agency_reference": reference,
        "request_id": rid,
    }
