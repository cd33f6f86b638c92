"""The release response as WCO DM XML (profile ``xsd/nsw-response.xsd``), and its validation.

The hub's answer travels as an Avro ``ReleaseResponse``; trader systems that speak WCO DM want
the same answer as a ``MetaData``/``Response`` message. :func:`response_xml` is a pure function
of the record (no clock, no I/O): the same record always gives the same bytes, so a response
published twice is byte-identical and can be compared, hashed or signed.

:func:`validate_response_xml` checks a document against the profile with the same hardened
parse and the same error shape (line and namespace-free element path) as a posted declaration,
so a test, a trader or ``nsw validate`` reads one kind of answer.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Final

from lxml import etree

from schemas._document import DocumentError, ErrorDetail
from schemas._records import AgencyOutcome, ItemOutcome, ReleaseResponse
from schemas._xml import DEFAULT_MAX_BYTES, compile_schema, element_path, line_of, parse_document, schema_check

RESPONSE_NAMESPACE: Final = "urn:nsw-broker:wco:response:1"
WCO_DATA_MODEL_VERSION: Final = "3.6"
INVALIDATED_FUNCTION_CODE: Final = "10"

_XSD_RESOURCE: Final = ("xsd", "nsw-response.xsd")
_XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_COUNTRY: Final = re.compile(r"[A-Z]{2}")
# Characters XML 1.0 cannot carry (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF). Agency
# reasons arrive over HTTP; one stray control character must not make the answer unbuildable.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MESSAGE_ELEMENT: Final = re.compile(r"\AElement '([^']+)'")

_Element = etree._Element


# --------------------------------------------------------------------------- building


def _q(name: str) -> str:
    return f"{{{RESPONSE_NAMESPACE}}}{name}"


def _text(value: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", value)


def _child(parent: _Element, name: str, text: str | None = None) -> _Element:
    element = etree.SubElement(parent, _q(name))
    if text is not None:
        element.text = _text(text)
    return element


def format_304(epoch_ms: int) -> str:
    """Epoch milliseconds as UN/EDIFACT 2379 format 304 in UTC (``CCYYMMDDHHMMSSZ``), seconds floored."""
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z"
    )


def _date_time(parent: _Element, name: str, epoch_ms: int) -> None:
    wrapper = _child(parent, name)
    _child(wrapper, "DateTimeString", format_304(epoch_ms)).set("formatCode", "304")


def _status(parent: _Element, agency: AgencyOutcome) -> None:
    status = _child(parent, "Status")
    carried = agency["carried_from_version"]
    if carried is not None:
        _child(status, "CarriedFromVersionID", str(carried))
    _date_time(status, "EffectiveDateTime", agency["decided_at"])
    _child(status, "NameCode", agency["agency"])
    _child(status, "ReferenceID", agency["decision_id"])
    _child(status, "StatusCode", agency["outcome"])


def _item(parent: _Element, item: ItemOutcome) -> None:
    goods_item = _child(parent, "GovernmentAgencyGoodsItem")
    _child(goods_item, "SequenceNumeric", str(item["sequence"]))
    _child(goods_item, "StatusCode", item["outcome"])
    for reason in item["reasons"]:
        info = _child(goods_item, "AdditionalInformation")
        _child(info, "StatementCode", reason["code"])
        _child(info, "StatementDescription", reason["reason"])
        valid_until = reason.get("valid_until")
        if valid_until:
            end_of_day = datetime.fromisoformat(valid_until).replace(hour=23, minute=59, second=59, tzinfo=UTC)
            _date_time(info, "LimitDateTime", int(end_of_day.timestamp() * 1000))
        _child(info, "StatementTypeCode", reason["agency"])


def _function_code(response: ReleaseResponse) -> str:
    code = response["function_code"]
    invalidated = response["invalidated"]
    if invalidated != (code == INVALIDATED_FUNCTION_CODE):
        raise ValueError(
            f"response {response['response_id']!r} has function code {code!r} but invalidated={invalidated}; "
            f"a cancelled declaration is answered with {INVALIDATED_FUNCTION_CODE} and only then"
        )
    return code


def response_xml(response: ReleaseResponse, *, country: str | None = None) -> bytes:
    """The response as a UTF-8 ``nsw-response`` document (XML declaration, pretty printed).

    Deterministic: the bytes depend only on the arguments (order of agencies, items and reasons
    as in the record). ``country`` fills ``ResponsibleCountryCode`` (ISO 3166-1 alpha-2). An
    invalidated response carries ``CancellationDateTime`` (= ``issued_at``) and neither agency
    statuses nor items, whatever the record lists. Raises ValueError for a record that
    contradicts itself (``invalidated`` without function code 10, or the reverse) or a malformed
    ``country``; anything else the profile refuses is found by :func:`validate_response_xml`.
    """
    if country is not None and _COUNTRY.fullmatch(country) is None:
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code in capitals, not {country!r}")
    function_code = _function_code(response)
    invalidated = response["invalidated"]

    # The profile's namespace as the default one, so element names carry no prefix.
    root = etree.Element(_q("MetaData"), nsmap={None: RESPONSE_NAMESPACE})  # type: ignore[dict-item]
    _child(root, "WCODataModelVersionCode", WCO_DATA_MODEL_VERSION)
    _child(root, "WCOTypeName", "RES")
    if country is not None:
        _child(root, "ResponsibleCountryCode", country)

    res = _child(root, "Response")
    _child(res, "FunctionCode", function_code)
    _child(res, "FunctionalReferenceID", response["response_id"])
    _date_time(res, "IssueDateTime", response["issued_at"])
    _child(res, "VersionID", str(response["response_version"]))
    if not invalidated:
        for agency in response["agencies"]:
            _status(res, agency)

    declaration = _child(res, "Declaration")
    _date_time(declaration, "AcceptanceDateTime", response["received_at"])
    if invalidated:
        _date_time(declaration, "CancellationDateTime", response["issued_at"])
    _child(declaration, "FunctionalReferenceID", response["trader_reference"])
    _child(declaration, "ID", response["submission_id"])
    _child(declaration, "VersionID", str(response["version"]))
    if not invalidated and response["items"]:
        shipment = _child(declaration, "GoodsShipment")
        for item in response["items"]:
            _item(shipment, item)

    return _XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)


# --------------------------------------------------------------------------- validation


@cache
def response_xsd() -> bytes:
    """The response profile XSD (packaged resource), read once per process."""
    folder, name = _XSD_RESOURCE
    return resources.files("schemas").joinpath(folder).joinpath(name).read_bytes()


class _PerThread(threading.local):
    # An XMLSchema's error_log is per instance and libxml2 validates without the GIL: one compiled
    # schema per thread keeps two documents' errors apart (same reasoning as schemas/_xml.py).
    schema: etree.XMLSchema | None = None


_local = _PerThread()


def _schema() -> etree.XMLSchema:
    if _local.schema is None:
        _local.schema = compile_schema(response_xsd())
    return _local.schema


def validate_response_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Check a response document against the profile; raise DocumentError naming lines and paths.

    The parse is the declaration's hardened one (size, UTF-8, no DOCTYPE, no entities, no
    network), so this is safe on responses that come back from outside, e.g. a trader's report.
    """
    root = parse_document(data, max_bytes=max_bytes)
    try:
        schema_check(_schema(), root)
    except DocumentError as exc:
        raise DocumentError(exc.type, tuple(_with_path(root, d) for d in exc.errors)) from None


def _with_path(root: _Element, detail: ErrorDetail) -> ErrorDetail:
    """Fill in the path libxml2 leaves out for identity constraints (key, keyref, unique).

    Those errors still give the line and name the element, which is enough to find it.
    """
    named = _MESSAGE_ELEMENT.match(detail.message)
    if detail.path is not None or detail.line is None or named is None:
        return detail
    for element in root.iter(etree.Element):
        if line_of(element) == detail.line and etree.QName(element).localname == named.group(1):
            return ErrorDetail(detail.message, detail.line, element_path(element))
    return detail
