"""Limits on a declaration's content, the same for XML and Avro: what the hub's messages can carry.

Every message the hub derives from a declaration (the Submission, each agency's request, the
response) must fit a Kafka record, so the ingress refuses up front what could not: more than 999
items, and fields longer than the WCO Data Model formats the NSW profile (``nsw-declaration.xsd``)
and the UK CDS schemas give them. The XSD already bounds an NSW XML document; an Avro submission
has no facets and a CDS document maps into the same canonical record, so the check runs on that
record (:func:`limit_errors`), whatever the syntax. Paths are field paths, items indexed from 1
in the order sent (``/items[2]/description``), as in the Avro rules.

Pure: takes a record (a decoded trader record or a Submission, same field names) and returns
error details; a list that is too long is reported without walking it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from schemas._document import ErrorDetail, ErrorList

#: GoodsShipment/GovernmentAgencyGoodsItem maxOccurs (NSW profile and CDS).
MAX_ITEMS: Final = 999
#: Item numbers (SequenceNumeric, n..3).
MAX_SEQUENCE: Final = 999
#: Parties per declaration: the CDS mapping knows 12 roles; room for more.
MAX_PARTIES: Final = 20
#: AuthorisationHolder maxOccurs.
MAX_AUTHORISATIONS: Final = 99
#: Commodity/Classification maxOccurs: one commodity code plus CAS numbers.
MAX_CAS_NUMBERS: Final = 99
#: AdditionalDocument maxOccurs per item.
MAX_DOCUMENTS: Final = 99

#: Field -> longest value, in characters (WCO DM formats, e.g. an..35 for a reference).
TOP_FIELDS: Final[dict[str, int]] = {
    "function_code": 2,  # 9, 13
    "trader_reference": 35,  # FunctionalReferenceID an..35 (CDS LRN an..22)
    "declaration_type": 3,  # TypeCode, e.g. IMZ, INV
    "declarant_id": 17,  # EORI an..17
    "export_country": 2,
    "destination_country": 2,
}
PARTY_FIELDS: Final[dict[str, int]] = {"role": 35, "id": 35, "name": 70, "country": 2}
AUTHORISATION_FIELDS: Final[dict[str, int]] = {"category_code": 4, "holder_id": 35}
ITEM_FIELDS: Final[dict[str, int]] = {
    "description": 512,  # Commodity/Description an..512
    "commodity_code": 10,  # CN/TARIC code
    "origin_country": 2,
    "quantity_unit": 3,
    "currency": 3,
}
DOCUMENT_FIELDS: Final[dict[str, int]] = {"category_code": 1, "type_code": 3, "id": 35}
CAS_NUMBER_LENGTH: Final = 12  # 2-7 digits, 2 digits, 1 check digit, two hyphens


def _fields(errors: ErrorList, record: Mapping[str, Any], limits: Mapping[str, int], at: str) -> None:
    for name, limit in limits.items():
        value = record.get(name)
        if isinstance(value, str) and len(value) > limit and errors.wants():
            message = f"{name} has {len(value):,} characters; the limit is {limit}"
            errors.append(ErrorDetail(message, None, f"{at}/{name}"))


def _count(errors: ErrorList, values: object, limit: int, path: str) -> Sequence[Any]:
    """``values`` when within ``limit``; otherwise one error and nothing to walk."""
    if not isinstance(values, list | tuple):
        return ()
    if len(values) <= limit:
        return values
    if errors.wants():
        message = f"{path.rsplit('/', 1)[-1]} has {len(values):,} entries; the limit is {limit}"
        errors.append(ErrorDetail(message, None, path))
    return ()


def limit_errors(record: Mapping[str, Any]) -> ErrorList:
    """Every limit ``record`` exceeds (empty when it fits), at most MAX_REPORTED_ERRORS with details."""
    errors = ErrorList()
    _fields(errors, record, TOP_FIELDS, "")
    for index, party in enumerate(_count(errors, record.get("parties"), MAX_PARTIES, "/parties"), start=1):
        _fields(errors, party, PARTY_FIELDS, f"/parties[{index}]")
    authorisations = _count(errors, record.get("authorisations"), MAX_AUTHORISATIONS, "/authorisations")
    for index, authorisation in enumerate(authorisations, start=1):
        _fields(errors, authorisation, AUTHORISATION_FIELDS, f"/authorisations[{index}]")
    for index, item in enumerate(_count(errors, record.get("items"), MAX_ITEMS, "/items"), start=1):
        at = f"/items[{index}]"
        sequence = item.get("sequence")
        if isinstance(sequence, int) and not 1 <= sequence <= MAX_SEQUENCE and errors.wants():
            errors.append(ErrorDetail(f"sequence {sequence} is not an item number from 1 to {MAX_SEQUENCE}",
                                      None, f"{at}/sequence"))
        _fields(errors, item, ITEM_FIELDS, at)
        cas_numbers = _count(errors, item.get("cas_numbers"), MAX_CAS_NUMBERS, f"{at}/cas_numbers")
        for position, number in enumerate(cas_numbers, start=1):
            if isinstance(number, str) and len(number) > CAS_NUMBER_LENGTH and errors.wants():
                message = f"a CAS number has {len(number):,} characters; the limit is {CAS_NUMBER_LENGTH}"
                errors.append(ErrorDetail(message, None, f"{at}/cas_numbers[{position}]"))
        for position, document in enumerate(_count(errors, item.get("documents"), MAX_DOCUMENTS,
                                                    f"{at}/documents"), start=1):
            _fields(errors, document, DOCUMENT_FIELDS, f"{at}/documents[{position}]")
    return errors
