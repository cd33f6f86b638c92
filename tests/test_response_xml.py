"""The release response as WCO DM XML: every kind of answer validates, tampering is caught."""

from __future__ import annotations

import threading

import pytest
from lxml import etree

from broker import combine
from schemas import (
    AgencyDecision,
    AgencyItemReason,
    AgencyOutcome,
    DocumentError,
    ItemOutcome,
    Outcome,
    ReleaseResponse,
    RoutingPlan,
    registry,
)
from schemas._response_xml import RESPONSE_NAMESPACE, format_304, response_xml, validate_response_xml

NS = {"r": RESPONSE_NAMESPACE}
SID = "01J9Z3K4M5N6P7Q8R9S0T1V2W3"
RECEIVED = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DECIDED = RECEIVED + 90_500  # 00:01:30.5
ISSUED = RECEIVED + 125_999  # 00:02:05.999


FUNCTION_OUTCOMES: dict[str, Outcome] = {"08": "RELEASE", "05": "HOLD", "06": "HOLD", "03": "REFUSE", "10": "REFUSE"}
CODE_OUTCOMES: dict[str, Outcome] = {"C": "RELEASE", "H": "HOLD", "N": "REFUSE"}
STRICTNESS: dict[Outcome, int] = {"RELEASE": 0, "HOLD": 1, "REFUSE": 2}


def _response(
    function_code: str,
    *,
    agencies: list[AgencyOutcome],
    items: list[ItemOutcome],
    version: int = 1,
    response_version: int = 1,
    invalidated: bool = False,
) -> ReleaseResponse:
    return {
        "response_id": f"{SID}:{version}:{response_version}",
        "submission_id": SID,
        "version": version,
        "response_version": response_version,
        "issued_at": ISSUED,
        "received_at": RECEIVED,
        "trader_reference": "LRN-2026/0001",
        "declarant_id": "GB123456789000",
        "outcome": FUNCTION_OUTCOMES[function_code],
        "function_code": function_code,
        "agencies": agencies,
        "items": items,
        "invalidated": invalidated,
    }


def _agency(agency: str, outcome: Outcome, *, carried: int | None = None) -> AgencyOutcome:
    return {
        "agency": agency,
        "outcome": outcome,
        "decision_id": f"{SID}:1:{agency}:3f2a9c",
        "decided_at": DECIDED,
        "carried_from_version": carried,
    }


def _reason(agency: str, code: str, text: str) -> AgencyItemReason:
    return {"agency": agency, "outcome": CODE_OUTCOMES[code[0]], "code": code, "reason": text}


def _item(sequence: int, *reasons: AgencyItemReason) -> ItemOutcome:
    worst: Outcome = max((r["outcome"] for r in reasons), key=STRICTNESS.__getitem__, default="RELEASE")
    return {"sequence": sequence, "outcome": worst, "reasons": list(reasons)}


RELEASED = _response(
    "08",
    agencies=[_agency("customs", "RELEASE")],
    items=[_item(1, _reason("customs", "C01", "Green lane: release"))],
)
HELD_FOR_CONTROL = _response(
    "05",
    agencies=[_agency("customs", "HOLD")],
    items=[_item(1, _reason("customs", "H03", "Red lane: physical inspection"))],
)
DOCUMENTS_REQUIRED = _response(
    "06",
    agencies=[_agency("sps", "HOLD")],
    items=[_item(1, _reason("sps", "H01", "Phytosanitary certificate (N851) missing"))],
)
REFUSED = _response(
    "03",
    agencies=[_agency("cwc", "REFUSE")],
    items=[_item(1, _reason("cwc", "N01", "Schedule 2 chemical from a State not Party"))],
)
INVALIDATED = _response("10", agencies=[], items=[], invalidated=True)
AMENDED_MULTI = _response(
    "05",
    version=2,
    response_version=3,
    agencies=[
        _agency("customs", "RELEASE"),
        _agency("sps", "RELEASE", carried=1),
        _agency("ipr", "HOLD"),
    ],
    items=[
        _item(1, _reason("customs", "C01", "Green lane"), _reason("sps", "C02", "Certificate N851 checked")),
        _item(2, _reason("customs", "C01", "Green lane"), _reason("ipr", "H01", "Matches recorded brand; holder told")),
        _item(3),
    ],
)
NO_AGENCIES = _response("08", agencies=[], items=[_item(1)])

CASES: dict[str, ReleaseResponse] = {
    "release-08": RELEASED,
    "hold-05": HELD_FOR_CONTROL,
    "documents-06": DOCUMENTS_REQUIRED,
    "refuse-03": REFUSED,
    "invalidated-10": INVALIDATED,
    "amended-multi-agency": AMENDED_MULTI,
    "no-agencies": NO_AGENCIES,
}


def _root(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def _texts(root: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in root.iterfind(path, NS)]


@pytest.mark.parametrize("response", CASES.values(), ids=CASES.keys())
def test_fixture_is_a_valid_avro_record(response: ReleaseResponse) -> None:
    encoded = registry().encode("ReleaseResponse", response)
    name, decoded = registry().decode(encoded, "ReleaseResponse")
    assert name.endswith("ReleaseResponse")
    # Avro defaults fill what the fixture leaves out (fields added after the fixtures were written).
    expected = {"trader": "anonymous", **response,
                "agencies": [{"agency_reference": None, **a} for a in response["agencies"]],
                "items": [{**i, "reasons": [{"hold_reason": None, "valid_until": None, **r} for r in i["reasons"]]}
                          for i in response["items"]]}
    assert decoded == expected


@pytest.mark.parametrize("response", CASES.values(), ids=CASES.keys())
def test_each_response_validates(response: ReleaseResponse) -> None:
    data = response_xml(response, country="PK")
    validate_response_xml(data)
    root = _root(data)
    assert _texts(root, "r:Response/r:FunctionCode") == [response["function_code"]]
    assert _texts(root, "r:Response/r:FunctionalReferenceID") == [response["response_id"]]
    assert _texts(root, "r:Response/r:Declaration/r:ID") == [SID]
    assert _texts(root, "r:ResponsibleCountryCode") == ["PK"]


def test_document_shape() -> None:
    data = response_xml(RELEASED)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<MetaData xmlns="' + RESPONSE_NAMESPACE.encode())
    assert b"\n  <Response>\n" in data  # pretty printed
    root = _root(data)
    assert root.find("r:ResponsibleCountryCode", NS) is None
    assert _texts(root, "r:WCOTypeName") == ["RES"]
    assert _texts(root, "r:Response/r:IssueDateTime/r:DateTimeString") == ["20260101000205Z"]
    assert _texts(root, "r:Response/r:VersionID") == ["1"]
    declaration = "r:Response/r:Declaration/"
    assert _texts(root, declaration + "r:AcceptanceDateTime/r:DateTimeString") == ["20260101000000Z"]
    assert _texts(root, declaration + "r:FunctionalReferenceID") == ["LRN-2026/0001"]
    assert root.find(declaration + "r:CancellationDateTime", NS) is None
    status = root.find("r:Response/r:Status", NS)
    assert status is not None
    assert [etree.QName(c).localname for c in status] == ["EffectiveDateTime", "NameCode", "ReferenceID", "StatusCode"]
    assert _texts(status, "r:EffectiveDateTime/r:DateTimeString") == ["20260101000130Z"]
    assert status.find("r:EffectiveDateTime/r:DateTimeString", NS).get("formatCode") == "304"  # type: ignore[union-attr]


def test_multi_agency_items_and_carried_version() -> None:
    root = _root(response_xml(AMENDED_MULTI))
    assert _texts(root, "r:Response/r:VersionID") == ["3"]
    assert _texts(root, "r:Response/r:Declaration/r:VersionID") == ["2"]
    assert _texts(root, "r:Response/r:Status/r:NameCode") == ["customs", "sps", "ipr"]
    assert _texts(root, "r:Response/r:Status/r:StatusCode") == ["RELEASE", "RELEASE", "HOLD"]
    assert _texts(root, "r:Response/r:Status/r:CarriedFromVersionID") == ["1"]
    items = root.findall("r:Response/r:Declaration/r:GoodsShipment/r:GovernmentAgencyGoodsItem", NS)
    assert [_texts(i, "r:SequenceNumeric") for i in items] == [["1"], ["2"], ["3"]]
    assert [_texts(i, "r:StatusCode") for i in items] == [["RELEASE"], ["HOLD"], ["RELEASE"]]
    assert _texts(items[1], "r:AdditionalInformation/r:StatementCode") == ["C01", "H01"]
    assert _texts(items[1], "r:AdditionalInformation/r:StatementTypeCode") == ["customs", "ipr"]
    descriptions = _texts(items[1], "r:AdditionalInformation/r:StatementDescription")
    assert descriptions == ["Green lane", "Matches recorded brand; holder told"]
    assert items[2].find("r:AdditionalInformation", NS) is None


def test_a_decision_valid_until_a_date_gives_the_reason_a_limit() -> None:
    suspension: AgencyItemReason = {**_reason("ipr", "H01", "Suspended; holder must act by 2026-01-15"),
                                    "hold_reason": "IPR_SUSPENSION", "valid_until": "2026-01-15"}
    response = _response("05", agencies=[_agency("ipr", "HOLD")], items=[_item(1, suspension)])
    data = response_xml(response)
    validate_response_xml(data)
    root = _root(data)
    info = "r:Response/r:Declaration/r:GoodsShipment/r:GovernmentAgencyGoodsItem/r:AdditionalInformation"
    assert _texts(root, f"{info}/r:LimitDateTime/r:DateTimeString") == ["20260115235959Z"]
    assert _texts(root, f"{info}/r:StatementTypeCode") == ["ipr"]  # after the limit, as the profile orders them
    assert _root(response_xml(HELD_FOR_CONTROL)).find(f"{info}/r:LimitDateTime", NS) is None


def test_invalidated_has_cancellation_and_nothing_else() -> None:
    root = _root(response_xml(INVALIDATED))
    assert _texts(root, "r:Response/r:FunctionCode") == ["10"]
    assert _texts(root, "r:Response/r:Declaration/r:CancellationDateTime/r:DateTimeString") == ["20260101000205Z"]
    assert root.find("r:Response/r:Status", NS) is None
    assert root.find("r:Response/r:Declaration/r:GoodsShipment", NS) is None


def test_empty_agencies_and_items() -> None:
    response = _response("08", agencies=[], items=[])
    data = response_xml(response)
    validate_response_xml(data)
    root = _root(data)
    assert root.find("r:Response/r:Status", NS) is None
    assert root.find("r:Response/r:Declaration/r:GoodsShipment", NS) is None


def test_contradictory_record_is_refused() -> None:
    with pytest.raises(ValueError, match="invalidated=True"):
        response_xml({**INVALIDATED, "function_code": "03"})
    with pytest.raises(ValueError, match="invalidated=False"):
        response_xml({**REFUSED, "function_code": "10"})
    with pytest.raises(ValueError, match="alpha-2"):
        response_xml(RELEASED, country="pk")


def test_deterministic() -> None:
    first = response_xml(AMENDED_MULTI, country="PK")
    copy: ReleaseResponse = registry().decode(registry().encode("ReleaseResponse", AMENDED_MULTI))[1]  # type: ignore[assignment]
    assert response_xml(copy, country="PK") == first
    assert response_xml(AMENDED_MULTI, country="PK") == first
    assert response_xml(AMENDED_MULTI) != first


def test_time_format_is_utc_and_floors_to_the_second() -> None:
    assert format_304(0) == "19700101000000Z"
    assert format_304(999) == "19700101000000Z"
    assert format_304(ISSUED) == "20260101000205Z"
    assert format_304(-1) == "19691231235959Z"


def test_text_that_xml_cannot_carry_is_replaced() -> None:
    item = _item(1, _reason("customs", "C01", "Green\x00lane\x1b"))
    data = response_xml(_response("08", agencies=[_agency("customs", "RELEASE")], items=[item]))
    validate_response_xml(data)
    assert "Green\ufffdlane\ufffd".encode() in data


# --------------------------------------------------------------------------- tampering


def _tampered(response: ReleaseResponse, old: bytes, new: bytes) -> bytes:
    data = response_xml(response)
    assert data.count(old) == 1, old
    return data.replace(old, new)


def _line_of(data: bytes, marker: bytes) -> int:
    return data[: data.index(marker)].count(b"\n") + 1


def _refusal(data: bytes) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        validate_response_xml(data)
    assert caught.value.type == "schema-violation"
    return caught.value


def test_wrong_function_code_names_element_and_line() -> None:
    data = _tampered(RELEASED, b"<FunctionCode>08</FunctionCode>", b"<FunctionCode>04</FunctionCode>")
    error = _refusal(data)
    detail = error.errors[0]
    assert detail.path == "/MetaData/Response/FunctionCode"
    assert detail.line == _line_of(data, b"<FunctionCode>")
    assert "04" in detail.message
    assert "urn:" not in detail.message  # no Clark-notation namespaces for the trader


def test_missing_element_names_parent_and_line() -> None:
    data = response_xml(REFUSED)
    start = data.index(b"<ReferenceID>")
    end = data.index(b"</ReferenceID>") + len(b"</ReferenceID>")
    broken = data[:start] + data[end:]
    error = _refusal(broken)
    detail = error.errors[0]
    assert detail.path == "/MetaData/Response/Status/StatusCode"
    assert detail.line == _line_of(broken, b"<StatusCode>REFUSE")
    assert "ReferenceID" in detail.message


def test_second_item_path_is_indexed() -> None:
    data = _tampered(AMENDED_MULTI, b"<StatementCode>H01</StatementCode>", b"<StatementCode>X01</StatementCode>")
    detail = _refusal(data).errors[0]
    assert detail.path == (
        "/MetaData/Response/Declaration/GoodsShipment/GovernmentAgencyGoodsItem[2]/AdditionalInformation[2]/StatementCode"
    )
    assert detail.line == _line_of(data, b"X01")


@pytest.mark.parametrize(
    ("response", "old", "new", "words"),
    [
        (RELEASED, b"<WCOTypeName>RES<", b"<WCOTypeName>DEC<", "WCOTypeName"),
        (RELEASED, b"20260101000205Z", b"20260101000205+0100", "DateTimeString"),
        (RELEASED, b'"304">20260101000205Z', b'"102">20260101000205Z', "formatCode"),
        (RELEASED, b"<StatusCode>RELEASE</StatusCode>\n    </Status>", b"<StatusCode>MAYBE</StatusCode>\n    </Status>",
         "StatusCode"),
        (RELEASED, b"<ID>" + SID.encode(), b"<ID>S1", "ID"),
        (AMENDED_MULTI, b"<NameCode>sps<", b"<NameCode>customs<", "AgencyKey"),
        (AMENDED_MULTI, b"<StatementTypeCode>ipr<", b"<StatementTypeCode>cwc<", "ReasonAgencyHasStatus"),
        (AMENDED_MULTI, b"<SequenceNumeric>3<", b"<SequenceNumeric>1<", "OneItemPerSequence"),
    ],
    ids=["type-name", "time-offset", "format-code", "status-code", "submission-id", "agency-twice",
         "reason-without-agency", "item-twice"],
)
def test_profile_rules(response: ReleaseResponse, old: bytes, new: bytes, words: str) -> None:
    data = _tampered(response, old, new)
    detail = _refusal(data).errors[0]
    assert words in detail.message
    assert detail.line is not None
    assert detail.path is not None
    assert detail.path.startswith("/MetaData/")


def test_foreign_namespace_is_refused() -> None:
    data = _tampered(RELEASED, RESPONSE_NAMESPACE.encode(), b"urn:nsw-broker:wco:declaration:1")
    detail = _refusal(data).errors[0]
    assert detail.path == "/MetaData"


def test_doctype_is_refused_before_parsing() -> None:
    data = response_xml(RELEASED).replace(b"?>\n", b'?>\n<!DOCTYPE MetaData [<!ENTITY x "y">]>\n', 1)
    with pytest.raises(DocumentError) as caught:
        validate_response_xml(data)
    assert caught.value.type == "forbidden-construct"


def test_validation_in_threads_keeps_errors_apart() -> None:
    good = response_xml(AMENDED_MULTI)
    bad = _tampered(RELEASED, b"<FunctionCode>08<", b"<FunctionCode>99<")
    failures: list[str] = []

    def work(n: int) -> None:
        for _ in range(20):
            try:
                validate_response_xml(bad if n % 2 else good)
            except DocumentError as exc:
                if n % 2 == 0 or exc.errors[0].path != "/MetaData/Response/FunctionCode":
                    failures.append(str(exc))
            else:
                if n % 2:
                    failures.append("invalid document passed")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_identity_constraint_errors_get_a_path() -> None:
    # libxml2 reports key/keyref/unique violations without a path; the line finds the element.
    data = _tampered(AMENDED_MULTI, b"<StatementTypeCode>ipr<", b"<StatementTypeCode>cwc<")
    detail = _refusal(data).errors[0]
    assert detail.path == (
        "/MetaData/Response/Declaration/GoodsShipment/GovernmentAgencyGoodsItem[2]/AdditionalInformation[2]"
    )
    assert detail.line == _line_of(data, b"<StatementTypeCode>cwc<") - 3


def test_response_built_by_the_aggregator_validates() -> None:
    # Not a hand-made record: the hub's own combine(), including its "agency left an item out" hold.
    plan: RoutingPlan = {
        "submission_id": SID, "version": 2, "routed_at": RECEIVED + 10, "received_at": RECEIVED,
        "trader_reference": "LRN-2026/0001", "declarant_id": "GB123456789000", "item_sequences": [1, 2],
        "agencies": [
            {"agency": "customs", "reasons": [{"item": 1, "rule": "R1", "why": "all goods"},
                                              {"item": 2, "rule": "R1", "why": "all goods"}]},
            {"agency": "sps", "reasons": [{"item": 2, "rule": "R2", "why": "HS chapter 06"}],
             "carried_from_version": 1},
        ],
    }
    decisions: dict[str, AgencyDecision] = {
        "customs": {"decision_id": "C-1", "submission_id": SID, "version": 2, "agency": "customs",
                    "decided_at": DECIDED, "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01",
                                                      "reason": "green"}]},
        "sps": {"decision_id": "SPS-2026-000123", "submission_id": SID, "version": 1, "agency": "sps",
                "decided_at": DECIDED, "items": [{"sequence": 2, "outcome": "HOLD", "code": "H01",
                                                  "reason": "certificate N851 missing"}]},
    }
    response = combine(plan, decisions, response_version=1, now=ISSUED)
    registry().encode("ReleaseResponse", response)
    data = response_xml(response)
    validate_response_xml(data)
    root = _root(data)
    assert _texts(root, "r:Response/r:FunctionCode") == [response["function_code"]]
    assert "H-NOITEM" in _texts(root, ".//r:StatementCode")
    assert _texts(root, "r:Response/r:Status/r:CarriedFromVersionID") == ["1"]
