"""Hostile and broken documents: each is refused with the right type, status, line and path,
and nothing in a DTD is ever fetched or expanded."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

import schemas._xml as xml_module
from schemas._document import DOCUMENT_ERROR_TYPES, MAX_REPORTED_ERRORS, DocumentError, ErrorDetail
from schemas._xml import read_declaration, validate_document
from schemas.errors import NSWSchemaError

SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples"
NS = "urn:nsw-broker:wco:declaration:1"
PLAIN = (SAMPLES / "plain-goods.xml").read_text(encoding="utf-8")
ROOT_OPEN = f'<MetaData xmlns="{NS}">'
ITEM = "/MetaData/Declaration/GoodsShipment/GovernmentAgencyGoodsItem"
ORIGIN_CN = "<CountryCode>CN</CountryCode>\n        </Origin>"

XXE = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE MetaData [
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
{ROOT_OPEN}<WCODataModelVersionCode>&xxe;</WCODataModelVersionCode></MetaData>
""".encode()

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">\n' for n in range(1, 10)).replace(
        "&lol0;", "&lol;"
    )
    + f"]>\n{ROOT_OPEN}<WCOTypeName>&lol9;</WCOTypeName></MetaData>\n"
).encode()

EXTERNAL_DTD = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE MetaData SYSTEM "http://127.0.0.1:9/nsw-declaration.dtd">
{ROOT_OPEN}<WCOTypeName>DEC</WCOTypeName></MetaData>
""".encode()

INTERNAL_SUBSET_AFTER_COMMENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment
     over two lines -->
<!DOCTYPE MetaData [ <!ELEMENT MetaData ANY> ]>
{ROOT_OPEN}<WCOTypeName>DEC</WCOTypeName></MetaData>
""".encode()


def _variant(old: str, new: str, count: int = 1) -> bytes:
    """plain-goods.xml with ``old`` replaced (and a check that it was there to replace)."""
    assert PLAIN.count(old) >= count, old
    return PLAIN.replace(old, new, count).encode("utf-8")


def _refused(data: bytes, max_bytes: int = 5_000_000) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        read_declaration(data, submission_id="s", received_at=0, max_bytes=max_bytes)
    return caught.value


def _line_of(data: bytes, needle: bytes, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(data.splitlines(), start=1) if needle in line]
    return lines[occurrence - 1]


# --------------------------------------------------------------------------- forbidden constructs


@pytest.mark.parametrize(
    ("payload", "doctype_line"),
    [(XXE, 2), (BILLION_LAUGHS, 2), (EXTERNAL_DTD, 2), (INTERNAL_SUBSET_AFTER_COMMENT, 4)],
    ids=["xxe", "billion-laughs", "external-dtd", "internal-subset"],
)
def test_doctype_is_refused_before_lxml_sees_the_bytes(
    payload: bytes, doctype_line: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []

    def spy(data: bytes) -> etree._Element:
        parsed.append(data)
        raise AssertionError("the parser must not run on a document with a DOCTYPE")

    monkeypatch.setattr(xml_module, "_parse", spy)
    error = _refused(payload)
    assert error.type == "forbidden-construct"
    assert error.status == 400
    assert error.errors[0].line == doctype_line
    assert parsed == []
    assert "root:" not in str(error)


def test_doctype_after_a_utf8_bom_is_refused() -> None:
    error = _refused(b"\xef\xbb\xbf" + EXTERNAL_DTD)
    assert error.type == "forbidden-construct"


@pytest.mark.parametrize(
    "payload", [XXE, BILLION_LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "external-dtd"]
)
def test_parser_refuses_a_doctype_even_without_the_prolog_scan(payload: bytes) -> None:
    # Defence in depth: the parse step on its own must refuse too, having expanded nothing.
    with pytest.raises(DocumentError) as caught:
        xml_module._parse(payload)
    assert caught.value.type == "forbidden-construct"
    assert "root:" not in str(caught.value)


def test_hardened_parser_neither_reads_files_nor_expands_entities() -> None:
    xxe_root = etree.fromstring(XXE, xml_module._hardened_parser())
    assert b"root:" not in etree.tostring(xxe_root)
    # libxml2 gives up on the entity declarations themselves rather than expanding anything.
    with pytest.raises(etree.XMLSyntaxError, match="amplification"):
        etree.fromstring(BILLION_LAUGHS, xml_module._hardened_parser())


# --------------------------------------------------------------------------- bytes and syntax


def test_not_well_formed_is_400_with_the_line() -> None:
    data = _variant("<TypeCode>IMZ</TypeCode>", "<TypeCode>IMZ</Typecode>")
    error = _refused(data)
    assert error.type == "not-well-formed"
    assert error.status == 400
    assert error.errors[0].line == _line_of(data, b"</Typecode>")


def test_an_earlier_parse_error_never_leaks_into_another_documents_answer() -> None:
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(b"<other-traders-secret-consignment>", etree.XMLParser())
    error = _refused(_variant("<TypeCode>IMZ</TypeCode>", "<TypeCode>IMZ</Typecode>"))
    assert len(error.errors) == 1
    assert "secret" not in repr(error.errors)


def test_truncated_document_is_not_well_formed() -> None:
    error = _refused(PLAIN.encode()[:400])
    assert error.type == "not-well-formed"
    assert error.errors[0].line is not None


def test_invalid_utf8_bytes_are_wrong_encoding_with_the_line() -> None:
    data = PLAIN.encode().replace(b"Fastline Fixings Ltd</Name>", b"Fastline Fixings \xffLtd</Name>", 1)
    assert b"\xff" in data
    error = _refused(data)
    assert error.type == "wrong-encoding"
    assert error.status == 400
    assert error.errors[0].line == _line_of(data, b"\xff")


def test_declared_latin1_is_wrong_encoding() -> None:
    data = _variant('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    error = _refused(data)
    assert error.type == "wrong-encoding"
    assert error.errors[0].line == 1


def test_utf16_is_wrong_encoding() -> None:
    error = _refused(PLAIN.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    assert error.type == "wrong-encoding"


def test_utf8_bom_is_accepted() -> None:
    record = read_declaration(b"\xef\xbb\xbf" + PLAIN.encode(), submission_id="s", received_at=0)
    assert record["trader_reference"] == "LRN-2024-PG-000117"


def test_oversize_is_413_and_the_limit_itself_is_accepted() -> None:
    data = PLAIN.encode()
    assert read_declaration(data, submission_id="s", received_at=0, max_bytes=len(data))["items"]
    error = _refused(data, max_bytes=len(data) - 1)
    assert error.type == "too-large"
    assert error.status == 413


# --------------------------------------------------------------------------- namespace and kind


@pytest.mark.parametrize(
    "root",
    [
        '<MetaData xmlns="urn:wco:datamodel:WCO:DocumentMetaData-DMS:2">',
        "<MetaData>",
    ],
    ids=["hmrc-namespace", "no-namespace"],
)
def test_unknown_namespace_is_422(root: str) -> None:
    data = _variant(ROOT_OPEN, root)
    error = _refused(data)
    assert error.type == "unknown-namespace"
    assert error.status == 422
    assert error.errors[0].path == "/MetaData"
    assert error.errors[0].line == _line_of(data, b"<MetaData")


def test_wrong_root_is_unknown_message_kind() -> None:
    data = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Response xmlns="{NS}"><FunctionCode>08</FunctionCode></Response>'
    )
    error = _refused(data.encode())
    assert error.type == "unknown-message-kind"
    assert error.status == 422
    assert error.errors[0].line == 2


def test_response_type_name_is_unknown_message_kind() -> None:
    data = _variant("<WCOTypeName>DEC</WCOTypeName>", "<WCOTypeName>RES</WCOTypeName>")
    error = _refused(data)
    assert error.type == "unknown-message-kind"
    assert error.errors[0].path == "/MetaData/WCOTypeName"
    assert error.errors[0].line == _line_of(data, b"<WCOTypeName>")


# --------------------------------------------------------------------------- schema violations


def test_all_schema_errors_are_reported_with_clean_paths() -> None:
    data = _variant(ORIGIN_CN, ORIGIN_CN.replace(">CN<", ">China<"))
    data = data.replace(b'currencyID="GBP"', b'currencyID="pounds"')
    error = _refused(data)
    assert error.type == "schema-violation"
    assert error.status == 422
    paths = {detail.path for detail in error.errors}
    assert f"{ITEM}/Origin/CountryCode" in paths
    assert f"{ITEM}/CustomsValueAmount" in paths
    assert all(detail.line is not None for detail in error.errors)
    assert all(NS not in detail.message for detail in error.errors)


def test_short_commodity_code_is_a_schema_violation_at_the_id() -> None:
    data = _variant("<ID>73181500</ID>", "<ID>7318</ID>")
    error = _refused(data)
    assert error.type == "schema-violation"
    detail = error.errors[0]
    assert detail.path == f"{ITEM}/Commodity/Classification/ID"
    assert detail.line == _line_of(data, b"<ID>7318</ID>")


def test_foreign_element_is_refused() -> None:
    data = _variant("<TypeCode>IMZ</TypeCode>", '<TypeCode>IMZ</TypeCode><x:Extra xmlns:x="urn:other"/>')
    error = _refused(data)
    assert error.type == "schema-violation"
    assert any("Extra" in detail.message for detail in error.errors)


def test_unknown_function_code_is_a_schema_violation() -> None:
    error = _refused(_variant("<FunctionCode>9</FunctionCode>", "<FunctionCode>10</FunctionCode>"))
    assert error.type == "schema-violation"
    assert error.errors[0].path == "/MetaData/Declaration/FunctionCode"


def test_reported_errors_are_capped() -> None:
    item_start = PLAIN.index("<GovernmentAgencyGoodsItem>")
    item_end = PLAIN.index("</GovernmentAgencyGoodsItem>") + len("</GovernmentAgencyGoodsItem>")
    item = PLAIN[item_start:item_end].replace(ORIGIN_CN, ORIGIN_CN.replace(">CN<", ">cn<"))
    numbers = range(1, MAX_REPORTED_ERRORS + 21)
    items = "".join(item.replace("<SequenceNumeric>1<", f"<SequenceNumeric>{n}<") for n in numbers)
    error = _refused((PLAIN[:item_start] + items + PLAIN[item_end:]).encode())
    assert error.type == "schema-violation"
    assert len(error.errors) == MAX_REPORTED_ERRORS + 1
    assert error.errors[-1].message == "20 further errors not listed"


# --------------------------------------------------------------------------- business rules


def _two_items(second_sequence: str) -> str:
    item_start = PLAIN.index("<GovernmentAgencyGoodsItem>")
    item_end = PLAIN.index("</GovernmentAgencyGoodsItem>") + len("</GovernmentAgencyGoodsItem>")
    item = PLAIN[item_start:item_end]
    second = item.replace("<SequenceNumeric>1<", f"<SequenceNumeric>{second_sequence}<")
    return PLAIN[:item_end] + "\n      " + second + PLAIN[item_end:]


def test_duplicate_sequence_numeric_is_a_business_rule_error() -> None:
    data = _two_items("1").encode()
    error = _refused(data)
    assert error.type == "business-rule"
    assert error.status == 422
    assert error.errors == (
        ErrorDetail(
            message=(
                "SequenceNumeric 1 is used by more than one GovernmentAgencyGoodsItem "
                f"(first on line {_line_of(data, b'<SequenceNumeric>1<')})"
            ),
            line=_line_of(data, b"<SequenceNumeric>1<", occurrence=2),
            path="/MetaData/Declaration/GoodsShipment/GovernmentAgencyGoodsItem[2]/SequenceNumeric",
        ),
    )


def test_distinct_sequences_pass() -> None:
    record = read_declaration(_two_items("2").encode(), submission_id="s", received_at=0)
    assert [item["sequence"] for item in record["items"]] == [1, 2]


def test_item_with_only_a_cas_number_lacks_a_commodity_code() -> None:
    data = _variant(
        "<ID>73181500</ID>\n            <IdentificationTypeCode>TSP</IdentificationTypeCode>",
        "<ID>102-71-6</ID>\n            <IdentificationTypeCode>CAS</IdentificationTypeCode>",
    )
    error = _refused(data)
    assert error.type == "business-rule"
    assert error.errors[0].path == "/MetaData/Declaration/GoodsShipment/GovernmentAgencyGoodsItem/Commodity"
    assert "TSP or GN" in error.errors[0].message
    assert error.errors[0].line == _line_of(data, b"<Commodity>")


def test_cas_shaped_commodity_code_is_refused() -> None:
    error = _refused(_variant("<ID>73181500</ID>", "<ID>102-71-6</ID>"))
    assert error.type == "business-rule"
    assert error.errors[0].path is not None
    assert error.errors[0].path.endswith("/Commodity/Classification/ID")


def test_cas_number_with_a_wrong_check_digit_is_refused() -> None:
    good = (SAMPLES / "chemical-cwc.xml").read_bytes()
    error = _refused(good.replace(b"<ID>102-71-6</ID>", b"<ID>102-71-5</ID>"))
    assert error.type == "business-rule"
    assert "102-71-5" in error.errors[0].message
    assert error.errors[0].path == f"{ITEM}/Commodity/Classification[2]/ID"


def test_disagreeing_commodity_codes_are_refused_and_a_consistent_gn_is_accepted() -> None:
    extra = (
        "</Classification>\n          <Classification>\n            <ID>{}</ID>\n"
        "            <IdentificationTypeCode>GN</IdentificationTypeCode>\n          </Classification>"
    )
    marker = "</Classification>"
    error = _refused(_variant(marker, extra.format("84713000")))
    assert error.type == "business-rule"
    assert "disagree" in error.errors[0].message
    record = read_declaration(_variant(marker, extra.format("731815")), submission_id="s", received_at=0)
    assert record["items"][0]["commodity_code"] == "73181500"


# --------------------------------------------------------------------------- the error type itself


def test_document_error_statuses_follow_the_contract() -> None:
    statuses = {kind: status for kind, (_, status) in DOCUMENT_ERROR_TYPES.items()}
    assert statuses == {
        "not-well-formed": 400,
        "wrong-encoding": 400,
        "forbidden-construct": 400,
        "too-large": 413,
        "unknown-namespace": 422,
        "unknown-message-kind": 422,
        "schema-violation": 422,
        "business-rule": 422,
        "limit-exceeded": 422,
    }


def test_document_error_is_a_schema_error_that_survives_pickling() -> None:
    error = _refused(_two_items("1").encode())
    assert isinstance(error, NSWSchemaError)
    assert isinstance(error, ValueError)
    assert error.retriable is False
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, DocumentError)
    assert copy.type == error.type
    assert copy.title == error.title
    assert copy.status == error.status
    assert copy.errors == error.errors


def test_validation_is_correct_under_concurrency() -> None:
    good = PLAIN.encode()
    bad = _variant(ORIGIN_CN, ORIGIN_CN.replace(">CN<", ">cn<"))

    def verdict(index: int) -> str:
        try:
            return validate_document(good if index % 2 else bad)
        except DocumentError as exc:
            return f"{exc.type}:{len(exc.errors)}:{exc.errors[0].path}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(verdict, range(400)))
    bad_verdict = f"schema-violation:1:{ITEM}/Origin/CountryCode"
    assert results == [bad_verdict if index % 2 == 0 else "DECLARATION" for index in range(400)]
