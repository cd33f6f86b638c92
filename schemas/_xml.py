"""Read a posted NSW-profile declaration: hardened parse, schema validation, business rules, mapping.

Traders' XML arrives from the internet, so the parse is hardened before anything else: size is
checked first, the document must be UTF-8, and a DOCTYPE is refused by scanning the prolog
*before* lxml sees the bytes, so no DTD, entity or external resource is ever loaded, expanded or
fetched (XXE, billion laughs, external DTDs). The parser is also configured not to resolve
entities, load DTDs, touch the network or accept huge trees, in case the scan is ever bypassed.

Every refusal is a :class:`~schemas._document.DocumentError` whose details carry a line and a
namespace-free element path, so the answer tells the trader exactly where to look.

``read_declaration`` and ``validate_document`` share one code path so ``nsw validate`` gives the
same verdict as the ingress.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable, Mapping, Sized
from functools import cache
from importlib import resources
from typing import Final, Protocol, cast

from lxml import etree

from refdata import hs_nomenclature
from schemas._document import MAX_REPORTED_ERRORS, DocumentError, DocumentErrorType, ErrorDetail, ErrorList, limited
from schemas._mapping import (
    CAS_TYPE,
    COMMODITY_CODE_TYPES,
    FUNCTION_CODE_KINDS,
    NSW_NAMESPACE,
    PATHS,
    commodity_codes,
    to_submission,
)
from schemas._records import Submission, SubmissionKind

DEFAULT_MAX_BYTES: Final = 5_000_000
#: Attributes per document. A declaration carries one per measure, amount or date (about 3 per item,
#: 3,000 for the profile's 999 items); each one a schema forbids costs libxml2 an error entry, so
#: 400,000 of them (4.9 MB) would cost a second of validation for nothing.
MAX_ATTRIBUTES: Final = 20_000
#: Characters of one error message (libxml2 quotes the offending value in full).
MAX_MESSAGE_CHARS: Final = 500
#: An element with more attributes than this is named when MAX_ATTRIBUTES is exceeded.
_CROWDED_ELEMENT: Final = 16

_XSD_RESOURCE: Final = ("xsd", "nsw-declaration.xsd")
_ROOT: Final = "MetaData"
_MESSAGE_KIND: Final = "DEC"

_Element = etree._Element

# Prolog items that may precede a DOCTYPE: whitespace, the XML declaration / PIs, comments.
_PROLOG_ITEM: Final = re.compile(rb"[ \t\r\n]+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_DOCTYPE: Final = b"<!DOCTYPE"
_XML_DECL_ENCODING: Final = re.compile(rb"""\A<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_OTHER_BOMS: Final = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
_ENCODING_ERRORS: Final = frozenset(
    getattr(etree.ErrorTypes, name)
    for name in (
        "ERR_INVALID_ENCODING",
        "ERR_UNKNOWN_ENCODING",
        "ERR_UNSUPPORTED_ENCODING",
        "ERR_ENCODING_NAME",
        "ERR_MISSING_ENCODING",
    )
)
_CAS: Final = re.compile(r"(\d{2,7})-(\d{2})-(\d)")
_COMMODITY_CODE: Final = re.compile(r"\d{6,10}")
_NS_BRACES: Final = "{" + NSW_NAMESPACE + "}"
_CLARK_NS: Final = re.compile(r"\{[^{}\s]*:[^{}\s]*\}(?=[A-Za-z_])")
_PREFIX: Final = re.compile(r"[A-Za-z_][\w.\-]*:(?=[A-Za-z_*])")
_PATH_PREFIX: Final = re.compile(r"([A-Za-z_][\w.\-]*):(?=[A-Za-z_*])")
_LOCAL_NAME_STEP: Final = re.compile(r"\*\[local-name\(\)\s*=\s*'([^']+)'\]")


def _fail(
    type_: DocumentErrorType, message: str, line: int | None = None, path: str | None = None
) -> DocumentError:
    return DocumentError(type_, (ErrorDetail(message=message, line=line, path=path),))


class _LogEntry(Protocol):
    """The part of lxml's ``_LogEntry`` we read (lxml-stubs leaves error logs untyped)."""

    message: str
    line: int
    path: str | None
    level: int


def _entries_iter(error_log: object) -> Iterable[_LogEntry]:
    return cast("Iterable[_LogEntry]", error_log)


def _line(element: _Element) -> int | None:
    # lxml-stubs types sourceline loosely; libxml2 reports 0 or None when it does not know.
    line: object = element.sourceline
    return line if isinstance(line, int) and line > 0 else None


def line_of(element: _Element) -> int | None:
    """The element's source line, or None when libxml2 does not know it."""
    return _line(element)


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


# --------------------------------------------------------------------------- parser and schema


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_blank_text=False,
        recover=False,
    )


@cache
def _xsd_bytes() -> bytes:
    """The profile XSD, read once per process."""
    folder, name = _XSD_RESOURCE
    return resources.files("schemas").joinpath(folder).joinpath(name).read_bytes()


class _PerThread(threading.local):
    # An XMLSchema keeps per-instance state (its error_log is reset and filled on every call, and
    # libxml2 validates without the GIL), so sharing one across threads could mix two documents'
    # errors. One per thread, compiled lazily from the XSD bytes read once, is cheap and race-free.
    schema: etree.XMLSchema | None = None


_local = _PerThread()


def _parser() -> etree.XMLParser:
    # A fresh parser per document: a reused lxml parser keeps earlier documents' errors in its
    # error_log (one trader's content must never appear in another's answer) and libxml2's entity
    # amplification accounting. Building one costs microseconds.
    return _hardened_parser()


def _schema() -> etree.XMLSchema:
    if _local.schema is None:
        _local.schema = etree.XMLSchema(etree.fromstring(_xsd_bytes(), _hardened_parser()))
    return _local.schema


# --------------------------------------------------------------------------- element paths


def element_path(element: _Element) -> str:
    """``/MetaData/Declaration/...`` with local names and ``[n]`` where a name repeats among siblings."""
    steps: list[str] = []
    node: _Element | None = element
    while node is not None:
        parent = node.getparent()
        step = etree.QName(node).localname
        if parent is not None:
            same = list(parent.iterchildren(node.tag))
            if len(same) > 1:
                step += f"[{same.index(node) + 1}]"
        steps.append(step)
        node = parent
    return "/" + "/".join(reversed(steps))


def _clean_path(root: _Element, raw: str | None, in_scope: Mapping[str | None, str]) -> str | None:
    """Turn libxml2's path (``/*/*[3]/*[5]``, ``/ns:MetaData/...``) into :func:`element_path`.

    ``in_scope`` is ``root.nsmap``, built once per document by the caller; only the prefixes the path
    uses go to the XPath context (a document may declare 100,000 namespaces).
    """
    if not raw:
        return None
    namespaces = {prefix: in_scope[prefix] for prefix in set(_PATH_PREFIX.findall(raw)) if prefix in in_scope}
    try:
        found = root.getroottree().xpath(raw, namespaces=namespaces)
    except etree.XPathError:
        found = None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return element_path(found[0])
    # Fall back to a textual clean-up when the path cannot be resolved against the tree.
    return _PREFIX.sub("", _LOCAL_NAME_STEP.sub(r"\1", raw))


def _clean_message(message: str) -> str:
    # libxml2 names elements in Clark notation ({uri}local); traders know local names. It also quotes the
    # offending value, up to 64 kB of it: a hundred such errors would make a 6 MB answer.
    cleaned = _CLARK_NS.sub("", message[: MAX_MESSAGE_CHARS * 2].replace(_NS_BRACES, "")).strip()
    return cleaned if len(cleaned) <= MAX_MESSAGE_CHARS else cleaned[: MAX_MESSAGE_CHARS - 3] + "..."


# --------------------------------------------------------------------------- steps


def _check_size(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise _fail("too-large", f"the document has {len(data)} bytes; the limit is {max_bytes}")


def _check_encoding(data: bytes) -> None:
    """The profile is UTF-8 only; refuse other encodings and invalid byte sequences with a line."""
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            raise _fail("wrong-encoding", f"the document is {name}; the profile requires UTF-8", line=1)
    body = data.removeprefix(_UTF8_BOM)
    declared = _XML_DECL_ENCODING.match(body)
    if declared is not None and declared.group(1).decode("ascii", "replace").upper() != "UTF-8":
        name = declared.group(1).decode("ascii", "replace")
        message = f"the document declares encoding {name!r}; the profile requires UTF-8"
        raise _fail("wrong-encoding", message, line=1)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(
            "wrong-encoding",
            f"byte 0x{data[exc.start]:02X} at offset {exc.start} is not valid UTF-8",
            line=_line_at(data, exc.start),
        ) from None


def _check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE before lxml reads the bytes, so no DTD or entity is ever processed."""
    pos = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    while (item := _PROLOG_ITEM.match(data, pos)) is not None:
        pos = item.end()
    if data.startswith(_DOCTYPE, pos):
        raise _fail(
            "forbidden-construct",
            "DOCTYPE declarations (DTDs, entity declarations) are not allowed",
            line=_line_at(data, pos),
        )


def _parse(data: bytes) -> _Element:
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        # A DOCTYPE can make libxml2 give up (entity amplification limit): report the real cause.
        _check_prolog(data)
        # Only the exception's own fields: lxml's parse error_log is per thread, not per document,
        # and can still hold an earlier document's errors (never show one trader another's data).
        # Without recovery libxml2 stops at the first fatal error, so that is the whole story.
        code: object = getattr(exc, "code", None)  # lxml-stubs omit ParseError.code
        kind: DocumentErrorType = "wrong-encoding" if code in _ENCODING_ERRORS else "not-well-formed"
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        raise _fail(kind, _clean_message(str(exc.msg)), line=line) from None
    docinfo = root.getroottree().docinfo
    doctype: object = getattr(docinfo, "doctype", "")
    if doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # Unreachable while _check_prolog runs first; kept so the guarantee does not rest on one regex.
        at = data.find(_DOCTYPE)
        line = _line_at(data, at) if at >= 0 else None
        raise _fail("forbidden-construct", "DOCTYPE declarations are not allowed", line=line)
    return root


def _check_kind(root: _Element) -> None:
    qname = etree.QName(root)
    path = f"/{qname.localname}"
    if qname.namespace != NSW_NAMESPACE:
        found = f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
        raise _fail(
            "unknown-namespace",
            f"root element {qname.localname!r} is in {found}; expected {NSW_NAMESPACE!r}",
            line=_line(root),
            path=path,
        )
    if qname.localname != _ROOT:
        raise _fail(
            "unknown-message-kind",
            f"root element is {qname.localname!r}; a declaration is a {_ROOT!r} envelope",
            line=_line(root),
            path=path,
        )
    type_name = PATHS.find(root, "d:WCOTypeName")
    if type_name is not None and (type_name.text or "").strip() != _MESSAGE_KIND:
        raise _fail(
            "unknown-message-kind",
            f"WCOTypeName is {(type_name.text or '').strip()!r}; this profile accepts {_MESSAGE_KIND!r}",
            line=_line(type_name),
            path=element_path(type_name),
        )


def _validate(root: _Element) -> None:
    schema_check(_schema(), root)


def schema_check(schema: etree.XMLSchema, root: _Element) -> None:
    """Validate ``root`` with a compiled schema; raise ``schema-violation`` naming lines and paths."""
    if schema.validate(root.getroottree()):
        return
    # Paths only for the errors reported: each costs an XPath query and a walk up the tree.
    log = schema.error_log
    details = ErrorList()
    in_scope = root.nsmap
    for entry in itertools.islice(_entries_iter(log), MAX_REPORTED_ERRORS):
        path = _clean_path(root, entry.path, in_scope)
        details.append(ErrorDetail(_clean_message(entry.message), entry.line or None, path))
    details.dropped = len(cast("Sized", log)) - len(details)
    if not details:  # pragma: no cover - libxml2 always logs why a document is invalid
        details.append(ErrorDetail("the document does not conform to the declaration schema", None, None))
    raise DocumentError("schema-violation", limited(details))


def _cas_check_digit_ok(number: str) -> bool:
    match = _CAS.fullmatch(number)
    if match is None:
        return False
    digits = (match.group(1) + match.group(2))[::-1]
    return sum(int(d) * weight for weight, d in enumerate(digits, start=1)) % 10 == int(match.group(3))


def _add(errors: ErrorList, message: str, element: _Element) -> None:
    if errors.wants():
        errors.append(ErrorDetail(message, _line(element), element_path(element)))


def _classification_errors(commodity: _Element, errors: ErrorList) -> None:
    found = errors.total
    for classification in PATHS.iter(commodity, "d:Classification"):
        id_el = PATHS.find(classification, "d:ID")
        type_el = PATHS.find(classification, "d:IdentificationTypeCode")
        if id_el is None or type_el is None:  # pragma: no cover - both mandatory in the schema
            continue
        value = (id_el.text or "").strip()
        kind = (type_el.text or "").strip()
        if kind in COMMODITY_CODE_TYPES and _COMMODITY_CODE.fullmatch(value) is None:
            _add(errors, f"Classification ID {value!r} of type {kind} must be a commodity code of 6 to 10 digits",
                 id_el)
        elif kind in COMMODITY_CODE_TYPES and (problem := hs_nomenclature().problem(value)) is not None:
            _add(errors, f"{problem} (unknown HS code)", id_el)
        elif kind == CAS_TYPE and not _cas_check_digit_ok(value):
            _add(errors, f"Classification ID {value!r} of type CAS is not a CAS registry number (check digit)", id_el)
    if errors.total > found:
        return
    codes = commodity_codes(commodity)
    if not codes:
        message = "Commodity has no Classification with a commodity code (IdentificationTypeCode TSP or GN)"
        _add(errors, message, commodity)
        return
    longest = max((code for _, code in codes), key=len)
    for id_el, code in codes:
        if not longest.startswith(code):
            _add(errors, f"commodity codes {code} and {longest} of the same Commodity disagree", id_el)


def nsw_rule_errors(root: _Element) -> list[ErrorDetail]:
    """The NSW profile's business rules over a schema-valid document (empty when all hold).

    An :class:`ErrorList`: details for the first MAX_REPORTED_ERRORS, the rest only counted.
    """
    errors = ErrorList()
    first_seen: dict[int, _Element] = {}
    for item in PATHS.iter(root, "d:Declaration/d:GoodsShipment/d:GovernmentAgencyGoodsItem"):
        sequence = PATHS.find(item, "d:SequenceNumeric")
        if sequence is not None:
            number = int((sequence.text or "").strip())
            if number in first_seen:
                message = (
                    f"SequenceNumeric {number} is used by more than one GovernmentAgencyGoodsItem "
                    f"(first on line {_line(first_seen[number])})"
                )
                _add(errors, message, sequence)
            else:
                first_seen[number] = sequence
        commodity = PATHS.find(item, "d:Commodity")
        if commodity is not None:
            _classification_errors(commodity, errors)
    return errors


def _check_business_rules(root: _Element) -> SubmissionKind:
    errors = nsw_rule_errors(root)
    if errors:
        raise DocumentError("business-rule", limited(errors))
    function_code = PATHS.find(root, "d:Declaration/d:FunctionCode")
    code = "" if function_code is None else (function_code.text or "").strip()
    try:
        return FUNCTION_CODE_KINDS[code]
    except KeyError:  # pragma: no cover - the schema enumerates the function codes
        raise _fail("business-rule", f"FunctionCode {code!r} is not one the profile knows") from None


def parse_document(data: bytes, *, max_bytes: int) -> _Element:
    """Size, encoding and prolog checks, then the hardened parse: the first steps of every bundle."""
    _check_size(data, max_bytes)
    _check_encoding(data)
    _check_prolog(data)
    root = _parse(data)
    _check_attributes(root)
    return root


def _check_attributes(root: _Element) -> None:
    """Refuse a document with more attributes than any declaration needs, before the schema sees them."""
    count = root.xpath("count(//@*)")
    if not isinstance(count, float) or count <= MAX_ATTRIBUTES:
        return
    crowded = root.xpath(f"(//*[count(@*) > {_CROWDED_ELEMENT}])[1]")
    element = crowded[0] if isinstance(crowded, list) and crowded and isinstance(crowded[0], etree._Element) else None
    raise _fail(
        "limit-exceeded",
        f"the document has {int(count):,} attributes; the hub accepts at most {MAX_ATTRIBUTES:,}",
        line=None if element is None else _line(element),
        path=None if element is None else element_path(element),
    )


def compile_schema(xsd: bytes, base_url: str | None = None) -> etree.XMLSchema:
    """Compile an XSD (its includes and imports resolved relative to ``base_url``)."""
    if base_url is None:
        return etree.XMLSchema(etree.fromstring(xsd, _hardened_parser()))
    return etree.XMLSchema(etree.fromstring(xsd, _hardened_parser(), base_url=base_url))


def nsw_xsd() -> bytes:
    """The NSW profile XSD (packaged resource)."""
    return _xsd_bytes()


def _checked(data: bytes, max_bytes: int) -> tuple[_Element, SubmissionKind]:
    root = parse_document(data, max_bytes=max_bytes)
    _check_kind(root)
    _validate(root)
    return root, _check_business_rules(root)


# --------------------------------------------------------------------------- public API


def validate_document(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> SubmissionKind:
    """Check a posted declaration without mapping it; return its kind or raise DocumentError."""
    _, kind = _checked(data, max_bytes)
    return kind


def read_declaration(
    data: bytes,
    *,
    submission_id: str,
    received_at: int,
    version: int = 1,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Submission:
    """Validate a posted declaration and return it as a canonical Submission; raise DocumentError."""
    root, kind = _checked(data, max_bytes)
    return to_submission(
        root, kind=kind, submission_id=submission_id, received_at=received_at, version=version
    )
