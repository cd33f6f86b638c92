"""Map a validated NSW-profile declaration (``schemas/xsd/nsw-declaration.xsd``) to a Submission.

Pure: takes an lxml element that has already passed schema validation and the profile's business
rules (``schemas._xml``), returns the canonical record. Because the input is known to be valid,
the mapping does not re-check shapes; it only decides how XML values become canonical values:
text is whitespace-collapsed (the schema types are ``xs:token``), masses become kilograms, and
the item commodity code is the most precise TSP/GN classification.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from lxml import etree

from schemas._context import with_context
from schemas._records import Authorisation, Document, Item, Party, Submission, SubmissionKind
from schemas._tree import Paths

NSW_NAMESPACE: Final = "urn:nsw-broker:wco:declaration:1"
#: Name of the schema bundle recorded on every Submission read with this profile.
BUNDLE: Final = "nsw"

NS: Final = {"d": NSW_NAMESPACE}
#: Child-path look-ups in the profile's namespace (``PATHS.find(e, "d:A/d:B")`` is ``e.find("d:A/d:B", NS)``).
PATHS: Final = Paths(NS)

#: Declaration/FunctionCode -> Submission.kind.
FUNCTION_CODE_KINDS: Final[dict[str, SubmissionKind]] = {"9": "DECLARATION", "13": "AMENDMENT"}

#: Classification/IdentificationTypeCode values that carry a commodity code.
COMMODITY_CODE_TYPES: Final = frozenset({"TSP", "GN"})
CAS_TYPE: Final = "CAS"

# UN/ECE Rec. 20 mass units the profile allows, as kilograms per unit.
_KG_PER_UNIT: Final = {"KGM": Decimal(1), "GRM": Decimal("0.001"), "TNE": Decimal(1000)}

_Element = etree._Element


def _clean(text: str | None) -> str:
    # xs:token collapses whitespace for validation; keep the same value the schema checked.
    return " ".join((text or "").split())


def _text(parent: _Element, path: str) -> str | None:
    found = PATHS.find(parent, path)
    if found is None:
        return None
    return _clean(found.text) or None


def _required(parent: _Element, path: str) -> str:
    value = _text(parent, path)
    if value is None:  # pragma: no cover - the schema makes these elements mandatory
        raise ValueError(f"validated declaration lacks {path}")
    return value


def commodity_codes(commodity: _Element) -> list[tuple[_Element, str]]:
    """(ID element, code) of every TSP/GN classification of a Commodity, in document order."""
    codes: list[tuple[_Element, str]] = []
    for classification in PATHS.iter(commodity, "d:Classification"):
        kind = _text(classification, "d:IdentificationTypeCode")
        id_el = PATHS.find(classification, "d:ID")
        if kind in COMMODITY_CODE_TYPES and id_el is not None:
            codes.append((id_el, _clean(id_el.text)))
    return codes


def _commodity_code(commodity: _Element) -> str:
    # Business rules guarantee at least one code and that all are prefixes of the most precise one.
    codes = [code for _, code in commodity_codes(commodity)]
    if not codes:  # pragma: no cover - refused as a business rule before mapping
        raise ValueError("validated declaration has an item without a commodity code")
    return max(codes, key=len)


def _cas_numbers(commodity: _Element) -> list[str]:
    seen: list[str] = []
    for classification in PATHS.iter(commodity, "d:Classification"):
        if _text(classification, "d:IdentificationTypeCode") == CAS_TYPE:
            number = _required(classification, "d:ID")
            if number not in seen:
                seen.append(number)
    return seen


def _party(role: str, element: _Element | None) -> Party | None:
    if element is None:
        return None
    return Party(
        role=role,
        id=_text(element, "d:ID"),
        name=_text(element, "d:Name"),
        country=_text(element, "d:Address/d:CountryCode"),
    )


def _decimal_attr(element: _Element | None, attribute: str) -> tuple[Decimal | None, str | None]:
    if element is None:
        return None, None
    unit = _clean(element.get(attribute))  # the schema makes the unit attribute mandatory
    return Decimal(_clean(element.text)), unit or None


def _item(element: _Element) -> Item:
    commodity = PATHS.find(element, "d:Commodity")
    if commodity is None:  # pragma: no cover - mandatory in the schema
        raise ValueError("validated declaration has an item without Commodity")
    documents = [
        Document(
            category_code=_required(doc, "d:CategoryCode"),
            type_code=_required(doc, "d:TypeCode"),
            id=_text(doc, "d:ID"),
        )
        for doc in PATHS.iter(element, "d:AdditionalDocument")
    ]
    quantity, quantity_unit = _decimal_attr(PATHS.find(element, "d:GoodsMeasure/d:TariffQuantity"), "unitCode")
    mass, mass_unit = _decimal_attr(PATHS.find(element, "d:GoodsMeasure/d:NetNetWeightMeasure"), "unitCode")
    value, currency = _decimal_attr(PATHS.find(element, "d:CustomsValueAmount"), "currencyID")
    net_mass_kg = None if mass is None or mass_unit is None else float(mass * _KG_PER_UNIT[mass_unit])
    return Item(
        sequence=int(_required(element, "d:SequenceNumeric")),
        description=_required(commodity, "d:Description"),
        commodity_code=_commodity_code(commodity),
        origin_country=_text(element, "d:Origin/d:CountryCode"),
        cas_numbers=_cas_numbers(commodity),
        documents=documents,
        quantity=None if quantity is None else float(quantity),
        quantity_unit=quantity_unit,
        net_mass_kg=net_mass_kg,
        value=None if value is None else float(value),
        currency=currency,
    )


def to_submission(
    root: _Element,
    *,
    kind: SubmissionKind,
    submission_id: str,
    received_at: int,
    version: int,
) -> Submission:
    """The canonical Submission for a validated ``MetaData`` root element."""
    declaration = PATHS.find(root, "d:Declaration")
    if declaration is None:  # pragma: no cover - mandatory in the schema
        raise ValueError("validated declaration lacks Declaration")
    parties = [
        party
        for party in (
            _party("DECLARANT", PATHS.find(declaration, "d:Declarant")),
            _party("EXPORTER", PATHS.find(declaration, "d:Exporter")),
            _party("IMPORTER", PATHS.find(declaration, "d:Importer")),
        )
        if party is not None
    ]
    authorisations = [
        Authorisation(category_code=_required(holder, "d:CategoryCode"), holder_id=_text(holder, "d:ID"))
        for holder in PATHS.iter(declaration, "d:AuthorisationHolder")
    ]
    items = sorted(
        (_item(item) for item in PATHS.iter(declaration, "d:GoodsShipment/d:GovernmentAgencyGoodsItem")),
        key=lambda item: item["sequence"],
    )
    return with_context(Submission(
        submission_id=submission_id,
        version=version,
        kind=kind,
        received_at=received_at,
        bundle=BUNDLE,
        function_code=_required(declaration, "d:FunctionCode"),
        trader_reference=_required(declaration, "d:FunctionalReferenceID"),
        declaration_type=_required(declaration, "d:TypeCode"),
        declarant_id=_required(declaration, "d:Declarant/d:ID"),
        parties=parties,
        authorisations=authorisations,
        export_country=_text(declaration, "d:GoodsShipment/d:ExportCountry/d:ID"),
        destination_country=_text(declaration, "d:GoodsShipment/d:Destination/d:CountryCode"),
        items=items,
        trader="anonymous",  # the ingress sets the authenticated trader
    ))
