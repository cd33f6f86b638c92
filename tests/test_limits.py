"""Bounded validation, the hub's content limits and the message budget: pure, no broker (the hub-level
tests are in tests/test_hostile_bodies.py)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from broker._config import HubConfig
from broker._envelope import avro_message
from broker._ingress import RECORD_OVERHEAD_BYTES, submission_budget
from broker._router import plan_submission
from broker._topics import SUBMISSIONS
from bus._limits import MAX_MESSAGE_BYTES
from routing import route
from routing._rules import load_rules
from schemas import DocumentError, encode_avro_submission, read_avro_submission, read_declaration
from schemas._document import MAX_REPORTED_ERRORS, ErrorDetail, ErrorList, limited
from schemas._limits import MAX_CAS_NUMBERS, MAX_DOCUMENTS, MAX_ITEMS, limit_errors
from schemas._xml import MAX_ATTRIBUTES, MAX_MESSAGE_CHARS, nsw_rule_errors, parse_document
from tests import hostile
from tests.conftest import SAMPLES


def _record(name: str = "chemical-cwc.xml") -> dict[str, Any]:
    submission = read_declaration((SAMPLES / name).read_bytes(), submission_id="s", received_at=0)
    return dict(submission)


def test_the_collector_keeps_the_first_details_and_counts_the_rest() -> None:
    errors = ErrorList(cap=3)
    built = 0
    for n in range(10):
        if errors.wants():
            built += 1
            errors.append(ErrorDetail(f"error {n}", None, None))
    assert built == 3
    assert (len(errors), errors.dropped, errors.total) == (3, 7, 10)
    assert [e.message for e in limited(errors)] == ["error 0", "error 1", "error 2", "7 further errors not listed"]


def test_rule_details_are_built_for_the_reported_errors_only() -> None:
    """Paths are the expensive part: the collector holds 100 details and only counts the others."""
    root = parse_document(hostile.xml_unknown_hs(), max_bytes=5_000_000)
    errors = nsw_rule_errors(root)
    assert isinstance(errors, ErrorList)
    assert len(errors) == MAX_REPORTED_ERRORS
    assert errors.total > 10_000


def test_a_document_with_too_many_attributes_is_refused_naming_the_crowded_element() -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(hostile.xml_attributes(), max_bytes=5_000_000)
    assert caught.value.type == "limit-exceeded"
    [error] = caught.value.errors
    assert error.path == "/MetaData/Declaration"
    assert f"at most {MAX_ATTRIBUTES:,}" in error.message


def test_a_sample_is_within_every_limit() -> None:
    for name in ("plain-goods.xml", "all-agencies.xml", "chemical-cwc.xml", "plants-sps.xml"):
        assert limit_errors(_record(name)) == [], name


def test_limits_name_the_field_and_the_limit() -> None:
    record = _record()
    record["trader_reference"] = "R" * 36
    record["parties"][0]["name"] = "N" * 71
    item = record["items"][0]
    item["description"] = "d" * 513
    item["cas_numbers"] = ["1" * 13]
    item["documents"] = [{"category_code": "NN", "type_code": "851", "id": None}]
    item["sequence"] = 1000
    found = {e.path: e.message for e in limit_errors(record)}
    assert found == {
        "/trader_reference": "trader_reference has 36 characters; the limit is 35",
        "/parties[1]/name": "name has 71 characters; the limit is 70",
        "/items[1]/sequence": "sequence 1000 is not an item number from 1 to 999",
        "/items[1]/description": "description has 513 characters; the limit is 512",
        "/items[1]/cas_numbers[1]": "a CAS number has 13 characters; the limit is 12",
        "/items[1]/documents[1]/category_code": "category_code has 2 characters; the limit is 1",
    }


def test_a_list_over_its_limit_is_one_error_and_is_not_walked() -> None:
    record = _record()
    item = record["items"][0]
    record["items"] = [{**item, "sequence": n, "description": "d" * 600} for n in range(1, MAX_ITEMS + 2)]
    [error] = limit_errors(record)
    assert (error.path, error.message) == ("/items", f"items has {MAX_ITEMS + 1:,} entries; the limit is {MAX_ITEMS}")
    record["items"] = [{**item, "cas_numbers": [""] * (MAX_CAS_NUMBERS + 1),
                        "documents": [item["documents"]] * (MAX_DOCUMENTS + 1)}]
    assert [e.path for e in limit_errors(record)] == ["/items[1]/cas_numbers", "/items[1]/documents"]


def test_avro_limits_are_checked_before_the_business_rules() -> None:
    record = _record()
    item = record["items"][0]
    record["items"] = [{**item, "sequence": n, "commodity_code": "9999999999"} for n in range(1, MAX_ITEMS + 2)]
    body = encode_avro_submission(record)
    with pytest.raises(DocumentError) as caught:
        read_avro_submission(body, submission_id="", received_at=0)
    assert caught.value.type == "limit-exceeded"  # not 1,000 unknown-HS business errors
    assert caught.value.status == 422
    assert [e.path for e in caught.value.errors] == ["/items"]


def test_hostile_builders_make_what_they_say() -> None:
    """The bodies the hub tests post are what their names claim (so a refusal is for the intended reason)."""
    assert 4_800_000 < len(hostile.xml_unknown_hs()) <= 5_000_000
    assert hostile.xml_attributes().count(b"=''") > 400_000
    assert len(hostile.avro_empty_cas()) > 4_800_000
    assert len(hostile.avro_many_items()) > 4_000_000
    assert hostile.xml_over_budget().count(b"<GovernmentAgencyGoodsItem>") == MAX_ITEMS


def test_an_error_quoting_a_huge_value_is_shortened() -> None:
    text = (SAMPLES / "plain-goods.xml").read_text(encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        read_declaration(text.replace("<ID>73181500</ID>", "<ID>" + "a" * 1_000_000 + "</ID>").encode(),
                         submission_id="s", received_at=0)
    [error] = caught.value.errors
    assert caught.value.type == "schema-violation"
    assert len(error.message) == MAX_MESSAGE_CHARS
    assert error.message.startswith("Element 'ID': [facet 'pattern'] The value 'aaa")
    assert error.message.endswith("...")


def test_a_declaration_at_the_budget_yields_messages_that_fit() -> None:
    """The ingress's estimate holds for the real routing table: a declaration just under the budget (999
    items, the all-agencies sample's four kinds of goods, 512-character descriptions, documents added until
    the Submission is at the budget) gives agency requests and a routing plan that fit MAX_MESSAGE_BYTES."""
    base = read_declaration((SAMPLES / "all-agencies.xml").read_bytes(), submission_id="S" * 40, received_at=0)
    kinds = base["items"]
    submission = dict(base, trader="a-trader")
    submission.pop("amends_id", None)
    budget = submission_budget(MAX_ITEMS)
    document = {"category_code": "N", "type_code": "851", "id": "D" * 35}
    for documents in range(99):  # each document adds about 46 kB over the 999 items
        submission["items"] = [{**kinds[n % 4], "sequence": n + 1, "documents": [document] * documents,
                                "description": (kinds[n % 4]["description"] + " " + "q" * 512)[:512]}
                               for n in range(MAX_ITEMS)]
        size = len(avro_message(SUBMISSIONS, "Submission", submission).value)
        if size > budget - 50_000:
            break
    assert budget - 50_000 < size <= budget  # the ingress accepts it, just
    routes = route(submission, load_rules(on=datetime.date.today()))  # type: ignore[arg-type]
    plan, requests, _ = plan_submission(submission, routes, now=0)  # type: ignore[arg-type]
    assert {r["agency"] for r in requests} == {"customs", "sps", "cwc", "ipr"}
    sizes = {r["agency"]: len(avro_message("x", "AgencyRequest", r).value) for r in requests}
    sizes["plan"] = len(avro_message("x", "RoutingPlan", plan).value)
    assert max(sizes.values()) <= MAX_MESSAGE_BYTES - RECORD_OVERHEAD_BYTES, sizes
    assert sizes["customs"] > size  # the customs request carries every item: the largest derived message


def test_the_ingress_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"NSW_RATE_LIMIT": "5", "NSW_RATE_BURST": "7", "NSW_MAX_IN_FLIGHT_PER_TRADER": "3",
                        "NSW_HEADER_TIMEOUT": "1.5", "NSW_BODY_TIMEOUT": "4", "NSW_MAX_HEADER_BYTES": "4096",
                        "NSW_VALIDATION_WORKERS": "3"}.items():
        monkeypatch.setenv(name, value)
    config = HubConfig.from_env()
    assert (config.rate_limit, config.rate_burst, config.max_in_flight_per_trader) == (5.0, 7.0, 3)
    assert (config.header_timeout, config.body_timeout, config.max_header_bytes) == (1.5, 4.0, 4096)
    assert config.validation_workers == 3
