"""UK CDS (HMRC DEC-DMS v2, WCO DM 3.6) documents: business rules and mapping to a Submission.

Pure: takes a root ``MetaData`` element that passed the CDS schemas and returns values. The CDS
profile differs from the NSW one in where things live, so the mapping is its own:

* **Commodity code**: the ``Classification`` with ``IdentificationTypeCode`` ``TSP`` (CN code, 8
  digits; 6 or 10 also occur), followed by the 2-digit ``TRC`` (TARIC) code when the TSP code has
  8 digits, giving the 10-digit TARIC code. ``TRA`` codes are TARIC *additional* codes and ``GN``
  codes are national additional codes (VAT, excise): neither is part of the commodity code. The
  first six digits are the HS subheading, checked against the nomenclature. CDS allows items
  without a commodity code (simplified declarations, amendments that change other data): their
  ``commodity_code`` is the empty string.
* **Parties**: Declarant, Exporter, Agent, Submitter (Declaration); Importer, Consignee, Buyer,
  Seller, AEOMutualRecognitionParty, DomesticDutyTaxParty (GoodsShipment); Consignor, Carrier
  (Consignment); role = element name in upper case, parties with no ID, name or country left out.
* **Declarant id**: Declarant/ID, else Submitter/ID (cancellations name only the submitter), else
  the empty string (some amendments name neither; the ingress knows the authenticated sender).
* **Quantities and values** live under Commodity: ``GoodsMeasure/TariffQuantity`` (supplementary
  units), ``GoodsMeasure/NetNetWeightMeasure`` (kg unless ``unitCode`` says otherwise); the value
  is the item's ``CustomsValueAmount``, else ``Commodity/InvoiceLine/ItemChargeAmount``, else
  ``StatisticalValueAmount``.
* **Cancellations** (TypeCode ``INV``) carry the MRN, the trader reference and a reason: the
  record has kind CANCELLATION, the trader reference, ``declaration_type`` ``INV``, the submitter
  as declarant and no items.
* **Amendments and cancellations** name the declaration they change in ``Declaration/ID`` (the MRN;
  their FunctionalReferenceID is the additional message's own reference): kept as ``amends_id`` for
  the ingress, which finds the submission by it (the hub's submission id plays the MRN's part).
* CAS numbers are not a CDS classification (``CV`` is the EU CUS number, kept as ``cus_code``): the
  canonical context (``schemas._context``) finds them in the goods description and additional information.
* **Context**: document status codes (``LPCOExemptionCode``), procedure codes (DE 1/10 requested + previous,
  DE 1/11 additional), additional information (DE 2/2) per item and for the declaration, invoice currency.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Final, ParamSpec, TypeVar

from lxml import etree

from refdata import hs_nomenclature
from schemas._context import with_context
from schemas._document import ErrorDetail, ErrorList
from schemas._records import Authorisation, Document, Item, Party, Statement, Submission, SubmissionKind
from schemas._xml import element_path, line_of

BUNDLE: Final = "hmrc-cds"
METADATA_NAMESPACE: Final = "urn:wco:datamodel:WCO:DocumentMetaData-DMS:2"
DEC_NAMESPACE: Final = "urn:wco:datamodel:WCO:DEC-DMS:2"
RES_NAMESPACE: Final = "urn:wco:datamodel:WCO:RES-DMS:2"

KINDS: Final[dict[str, SubmissionKind]] = {
    "declaration": "DECLARATION",
    "amendment": "AMENDMENT",
    "cancellation": "CANCELLATION",
}

_COMMODITY_CODE: Final = re.compile(r"\d{6,10}")
_TARIC: Final = re.compile(r"\d{2}")
_KG_PER_UNIT: Final = {"KGM": Decimal(1), "GRM": Decimal("0.001"), "TNE": Decimal(1000)}
_ITEMS: Final = "Declaration/GoodsShipment/GovernmentAgencyGoodsItem"

_PARTY_PATHS: Final = (
    "Declarant",
    "Exporter",
    "GoodsShipment/Importer",
    "Agent",
    "Submitter",
    "GoodsShipment/Consignee",
    "GoodsShipment/Consignment/Consignor",
    "GoodsShipment/Buyer",
    "GoodsShipment/Seller",
    "GoodsShipment/Consignment/Carrier",
    "GoodsShipment/AEOMutualRecognitionParty",
    "GoodsShipment/DomesticDutyTaxParty",
)

_Element = etree._Element


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


@cache
def _tags(path: str) -> tuple[str, ...]:
    return tuple(f"{{{DEC_NAMESPACE}}}{step}" for step in path.split("/"))


# The CDS samples are full of comments, and the mapping looks up dozens of paths under the same few
# elements (Declaration, GoodsShipment, each item): while a document is read (``@_indexed``), each element's
# children are grouped by tag once, so every later lookup is a dict access. This sits on the ingress hot path.
_INDEX: ContextVar[dict[_Element, dict[str, list[_Element]]] | None] = ContextVar("hmrc_index", default=None)
_NONE: Final[list[_Element]] = []
P = ParamSpec("P")
R = TypeVar("R")


def _indexed(read: Callable[P, R]) -> Callable[P, R]:
    """``read`` with its own child index for the document it reads (dropped when it returns)."""

    @functools.wraps(read)
    def reading(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _INDEX.set({})
        try:
            return read(*args, **kwargs)
        finally:
            _INDEX.reset(token)

    return reading


def _children(node: _Element, tag: str) -> list[_Element]:
    index = _INDEX.get()
    if index is None:
        return list(node.iterchildren(tag))
    by_tag = index.get(node)
    if by_tag is None:
        by_tag = index[node] = {}
        for child in node.iterchildren(etree.Element):  # elements only: no comments
            by_tag.setdefault(child.tag, []).append(child)
    return by_tag.get(tag, _NONE)


def _walk(parent: _Element | None, tags: tuple[str, ...]) -> _Element | None:
    node = parent
    for tag in tags:
        if node is None:
            return None
        found = _children(node, tag)
        node = found[0] if found else None
    return node


def _find(parent: _Element | None, path: str) -> _Element | None:
    return _walk(parent, _tags(path))


def _findall(parent: _Element | None, path: str) -> list[_Element]:
    tags = _tags(path)
    node = _walk(parent, tags[:-1])
    return [] if node is None else list(_children(node, tags[-1]))


def _text(parent: _Element | None, path: str) -> str | None:
    found = _find(parent, path)
    if found is None:
        return None
    return _clean(found.text) or None


def _classifications(commodity: _Element | None) -> dict[str, list[_Element]]:
    """IdentificationTypeCode -> the Classification/ID elements of that type, in document order."""
    found: dict[str, list[_Element]] = {}
    if commodity is None:
        return found
    for classification in _findall(commodity, "Classification"):
        kind = _text(classification, "IdentificationTypeCode")
        id_el = _find(classification, "ID")
        if kind is not None and id_el is not None:
            found.setdefault(kind, []).append(id_el)
    return found


# --------------------------------------------------------------------------- business rules


@_indexed
def rule_errors(root: _Element) -> list[ErrorDetail]:
    """CDS business rules the hub enforces: unique item numbers, commodity codes, known HS codes."""
    errors = ErrorList()  # details for the first ones only: a path costs a walk of the tree
    first_seen: dict[int, _Element] = {}
    nomenclature = hs_nomenclature()
    for item in _findall(root, _ITEMS):
        sequence = _find(item, "SequenceNumeric")
        if sequence is not None:
            number = int(_clean(sequence.text))
            if number in first_seen:
                message = (
                    f"SequenceNumeric {number} is used by more than one GovernmentAgencyGoodsItem "
                    f"(first on line {line_of(first_seen[number])})"
                )
                _add(errors, message, sequence)
            else:
                first_seen[number] = sequence
        for id_el in _classifications(_find(item, "Commodity")).get("TSP", []):
            value = _clean(id_el.text)
            if _COMMODITY_CODE.fullmatch(value) is None:
                _add(errors, f"Classification ID {value!r} of type TSP must be a commodity code of 6 to 10 digits",
                     id_el)
            elif (problem := nomenclature.problem(value)) is not None:
                _add(errors, f"{problem} (unknown HS code)", id_el)
    return errors


def _add(errors: ErrorList, message: str, element: _Element) -> None:
    if errors.wants():
        errors.append(ErrorDetail(message, line_of(element), element_path(element)))


# --------------------------------------------------------------------------- mapping


def _party(role: str, element: _Element | None) -> Party | None:
    if element is None:
        return None
    party = Party(
        role=role,
        id=_text(element, "ID"),
        name=_text(element, "Name"),
        country=_text(element, "Address/CountryCode"),
    )
    if party["id"] is None and party["name"] is None and party["country"] is None:
        return None
    return party


def _decimal(element: _Element | None) -> Decimal | None:
    if element is None:
        return None
    try:
        return Decimal(_clean(element.text))
    except InvalidOperation:  # pragma: no cover - the schema types these as decimals
        return None


def _commodity_code(commodity: _Element | None) -> str:
    codes = _classifications(commodity)
    tsp = [_clean(el.text) for el in codes.get("TSP", [])]
    if not tsp:
        return ""
    code = tsp[0]
    taric = [_clean(el.text) for el in codes.get("TRC", [])]
    if len(code) == 8 and taric and _TARIC.fullmatch(taric[0]):
        code += taric[0]
    return code


def _value(item: _Element, commodity: _Element | None) -> tuple[float | None, str | None]:
    candidates = [_find(item, "CustomsValueAmount")]
    if commodity is not None:
        candidates.append(_find(commodity, "InvoiceLine/ItemChargeAmount"))
    candidates.append(_find(item, "StatisticalValueAmount"))
    for element in candidates:
        amount = _decimal(element)
        if element is not None and amount is not None:
            return float(amount), _clean(element.get("currencyID")) or None
    return None, None


def _item(element: _Element, position: int) -> Item:
    commodity = _find(element, "Commodity")
    documents = [
        Document(category_code=category, type_code=type_code, id=_text(doc, "ID"),
                 status=_text(doc, "LPCOExemptionCode"))
        for doc in _findall(element, "AdditionalDocument")
        if (category := _text(doc, "CategoryCode")) is not None and (type_code := _text(doc, "TypeCode")) is not None
    ]
    cus = [_clean(el.text) for el in _classifications(commodity).get("CV", [])]
    quantity_el = None if commodity is None else _find(commodity, "GoodsMeasure/TariffQuantity")
    mass_el = None if commodity is None else _find(commodity, "GoodsMeasure/NetNetWeightMeasure")
    quantity = _decimal(quantity_el)
    mass = _decimal(mass_el)
    per_unit = None if mass_el is None else _KG_PER_UNIT.get(_clean(mass_el.get("unitCode")) or "KGM")
    value, currency = _value(element, commodity)
    sequence = _text(element, "SequenceNumeric")
    return Item(
        sequence=position if sequence is None else int(sequence),
        description=("" if commodity is None else _text(commodity, "Description")) or "",
        commodity_code=_commodity_code(commodity),
        origin_country=_text(element, "Origin/CountryCode"),
        cas_numbers=[],
        documents=documents,
        quantity=None if quantity is None else float(quantity),
        quantity_unit=None if quantity_el is None else (_clean(quantity_el.get("unitCode")) or None),
        net_mass_kg=None if mass is None or per_unit is None else float(mass * per_unit),
        value=value,
        currency=currency,
        cus_code=cus[0] if cus else None,
        procedure_codes=_procedures(element),
        statements=_statements(element),
    )


def _procedures(item: _Element) -> list[str]:
    """DE 1/10 (requested + previous procedure, 4 digits) first, then DE 1/11 additional procedures."""
    main: list[str] = []
    additional: list[str] = []
    for procedure in _findall(item, "GovernmentProcedure"):
        current, previous = _text(procedure, "CurrentCode"), _text(procedure, "PreviousCode")
        if current is None:
            continue
        if previous is not None:
            main.append(current + previous)
        else:
            additional.append(current)
    return main + additional


def _statements(parent: _Element | None) -> list[Statement]:
    """DE 2/2 additional information under ``parent``."""
    return [
        Statement(code=code, text=_text(info, "StatementDescription"))
        for info in _findall(parent, "AdditionalInformation")
        if (code := _text(info, "StatementCode")) is not None
    ]


def _first_item_text(items: list[_Element], path: str) -> str | None:
    for item in items:
        value = _text(item, path)
        if value is not None:
            return value
    return None


@_indexed
def to_submission(
    root: _Element,
    *,
    kind: SubmissionKind,
    submission_id: str,
    received_at: int,
    version: int,
) -> Submission:
    """The canonical Submission for a validated CDS ``MetaData`` carrying a Declaration."""
    declaration = _find(root, "Declaration")
    if declaration is None:  # pragma: no cover - recognition found it before validation
        raise ValueError("validated CDS document lacks Declaration")
    parties = [
        party
        for path in _PARTY_PATHS
        for element in _findall(declaration, path)
        if (party := _party(path.rsplit("/", 1)[-1].upper(), element)) is not None
    ]
    authorisations = [
        Authorisation(category_code=category, holder_id=_text(holder, "ID"))
        for holder in _findall(declaration, "AuthorisationHolder")
        if (category := _text(holder, "CategoryCode")) is not None
    ]
    item_elements = list(_findall(declaration, "GoodsShipment/GovernmentAgencyGoodsItem"))
    items = sorted(
        (_item(element, position) for position, element in enumerate(item_elements, start=1)),
        key=lambda item: item["sequence"],
    )
    return with_context(Submission(
        submission_id=submission_id,
        version=version,
        kind=kind,
        received_at=received_at,
        bundle=BUNDLE,
        function_code=_text(declaration, "FunctionCode") or "",
        trader_reference=_text(declaration, "FunctionalReferenceID") or "",
        declaration_type=_text(declaration, "TypeCode") or "",
        declarant_id=_text(declaration, "Declarant/ID") or _text(declaration, "Submitter/ID") or "",
        parties=parties,
        authorisations=authorisations,
        export_country=_text(declaration, "GoodsShipment/ExportCountry/ID")
        or _first_item_text(item_elements, "ExportCountry/ID"),
        destination_country=_text(declaration, "GoodsShipment/Destination/CountryCode")
        or _first_item_text(item_elements, "Destination/CountryCode"),
        items=items,
        trader="anonymous",  # the ingress sets the authenticated trader
        statements=_statements(declaration) + _statements(_find(declaration, "GoodsShipment")),
        invoice_currency=(invoice.get("currencyID") or None) if (invoice := _find(declaration, "InvoiceAmount"))
        is not None else None,
        amends_id=(_text(declaration, "ID") or None) if kind != "DECLARATION" else None,
    ))
