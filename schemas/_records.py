"""Typed views of the Avro records in ``schemas/avro``.

The records travel as plain dicts because that is what fastavro reads and writes; these
TypedDicts give the pure core (mapping, routing, decisions, aggregation) static types at no
runtime cost. Keep them in step with the ``.avsc`` files: ``tests/test_records.py`` checks.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from refdata import agency_specs

Outcome = Literal["RELEASE", "HOLD", "REFUSE"]
SubmissionKind = Literal["DECLARATION", "AMENDMENT", "CANCELLATION"]
#: An agency's name, as configured in ``refdata/agencies.json`` (adding one needs no code).
Agency = str
HoldReason = Literal["DOCUMENTS_REQUIRED", "INSPECTION", "IPR_SUSPENSION", "LICENCE_REQUIRED", "ESCALATED", "OTHER"]

AGENCIES: tuple[Agency, ...] = tuple(spec.name for spec in agency_specs())


class Party(TypedDict):
    role: str
    id: str | None
    name: str | None
    country: str | None


class Authorisation(TypedDict):
    category_code: str
    holder_id: str | None


class Document(TypedDict):
    category_code: str
    type_code: str
    id: str | None
    status: NotRequired[str | None]  # Avro default null; CDS LPCOExemptionCode


class Statement(TypedDict):
    code: str
    text: str | None


class Item(TypedDict):
    sequence: int
    description: str
    commodity_code: str
    origin_country: str | None
    cas_numbers: list[str]
    documents: list[Document]
    quantity: float | None
    quantity_unit: str | None
    net_mass_kg: float | None
    value: float | None
    currency: str | None
    base_value: NotRequired[float | None]  # Avro default null
    cus_code: NotRequired[str | None]  # Avro default null
    procedure_codes: NotRequired[list[str]]  # Avro default []
    statements: NotRequired[list[Statement]]  # Avro default []


Direction = Literal["IMPORT", "EXPORT", "TRANSIT", "OTHER", ""]
AdditionalType = Literal["FRONTIER", "PRE_LODGED", "SIMPLIFIED", "SIMPLIFIED_PRE_LODGED", "SUPPLEMENTARY", "OTHER", ""]


class Submission(TypedDict):
    submission_id: str
    version: int
    kind: SubmissionKind
    received_at: int
    bundle: str
    function_code: str
    trader_reference: str
    declaration_type: str
    declarant_id: str
    parties: list[Party]
    authorisations: list[Authorisation]
    export_country: str | None
    destination_country: str | None
    items: list[Item]
    trader: NotRequired[str]  # Avro default "anonymous"
    direction: NotRequired[Direction]  # Avro default ""
    additional_type: NotRequired[AdditionalType]  # Avro default ""
    statements: NotRequired[list[Statement]]  # Avro default []
    invoice_currency: NotRequired[str | None]
    base_currency: NotRequired[str | None]
    rates_date: NotRequired[str | None]
    #: Not on the topic: the id of the declaration an amendment or cancellation names (WCO DM
    #: Declaration/ID, the MRN in CDS); the ingress resolves it to the submission and drops it.
    amends_id: NotRequired[str | None]


class RoutingReason(TypedDict):
    item: int
    rule: str
    why: str


class AgencyRequest(TypedDict):
    request_id: str
    submission_id: str
    version: int
    agency: str
    requested_at: int
    trader_reference: str
    declaration_type: str
    declarant_id: str
    parties: list[Party]
    authorisations: list[Authorisation]
    export_country: str | None
    destination_country: str | None
    items: list[Item]
    reasons: list[RoutingReason]
    kind: NotRequired[SubmissionKind]  # Avro default DECLARATION
    direction: NotRequired[Direction]  # Avro default ""
    additional_type: NotRequired[AdditionalType]  # Avro default ""


class ItemDecision(TypedDict):
    sequence: int
    outcome: Outcome
    code: str
    reason: str
    hold_reason: NotRequired[HoldReason | None]  # Avro default null; set on HOLD
    valid_until: NotRequired[str | None]  # Avro default null; ISO 8601 date
    selected_by: NotRequired[list[str]]  # Avro default []; the profiles / rules that selected the item


class AgencyDecision(TypedDict):
    decision_id: str
    submission_id: str
    version: int
    agency: str
    decided_at: int
    items: list[ItemDecision]
    agency_reference: NotRequired[str | None]  # Avro default null
    request_id: NotRequired[str | None]  # Avro default null; the request it answers
    decided_by: NotRequired[str | None]  # Avro default null; the officer (console only), e.g. "sps/alice"


class AgencyRoute(TypedDict):
    agency: str
    reasons: list[RoutingReason]
    carried_from_version: NotRequired[int | None]  # Avro default null
    request_id: NotRequired[str | None]  # Avro default null (plans routed before requests were bound)


class RoutingPlan(TypedDict):
    submission_id: str
    version: int
    routed_at: int
    received_at: int
    trader_reference: str
    declarant_id: str
    item_sequences: list[int]
    agencies: list[AgencyRoute]
    kind: NotRequired[SubmissionKind]  # Avro default DECLARATION
    trader: NotRequired[str]  # Avro default "anonymous"


class AgencyOutcome(TypedDict):
    agency: str
    outcome: Outcome
    decision_id: str
    decided_at: int
    carried_from_version: NotRequired[int | None]  # Avro default null
    agency_reference: NotRequired[str | None]  # Avro default null


class AgencyItemReason(TypedDict):
    agency: str
    outcome: Outcome
    code: str
    reason: str
    hold_reason: NotRequired[HoldReason | None]  # Avro default null
    valid_until: NotRequired[str | None]  # Avro default null


class ItemOutcome(TypedDict):
    sequence: int
    outcome: Outcome
    reasons: list[AgencyItemReason]


class ReleaseResponse(TypedDict):
    response_id: str
    submission_id: str
    version: int
    response_version: int
    issued_at: int
    received_at: int
    trader_reference: str
    declarant_id: str
    outcome: Outcome
    function_code: str
    agencies: list[AgencyOutcome]
    items: list[ItemOutcome]
    invalidated: NotRequired[bool]  # Avro default false
    trader: NotRequired[str]  # Avro default "anonymous"


class InspectionResult(TypedDict):
    """An officer's inspection of items of one submission version (topic ``nsw.inspections``)."""

    result_id: str
    agency: str
    submission_id: str
    version: int
    request_id: str
    items: list[int]
    performed: bool
    finding: bool
    finding_code: str
    note: str
    officer: str
    recorded_at: int
    selected_by: list[str]
    rules: list[str]
    lane: str
