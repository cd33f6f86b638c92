"""Routing: rule kinds, first-match-wins, effective dates, and the sample declarations."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from routing import NoRuleSetError, RuleTable, RuleTableError, load_rules, route
from schemas import Authorisation, Document, Item, Submission

TODAY = date(2026, 11, 26)  # rule set 2026.1; set 2026.2 (concerns, direction, supplementary): test_routing_concerns.py
AEO_DECLARANT = "GB123456789000"
OTHER_DECLARANT = "GB987654321000"


def doc(code: str) -> Document:
    return {"category_code": code[0], "type_code": code[1:], "id": None}


def item(
    seq: int,
    code: str,
    description: str = "goods",
    *,
    origin: str | None = "CN",
    cas: list[str] | None = None,
    docs: list[str] | None = None,
    value: float | None = 1000.0,
) -> Item:
    return {
        "sequence": seq,
        "description": description,
        "commodity_code": code,
        "origin_country": origin,
        "cas_numbers": cas or [],
        "documents": [doc(c) for c in docs or []],
        "quantity": None,
        "quantity_unit": None,
        "net_mass_kg": None,
        "value": value,
        "currency": "GBP",
    }


def submission(
    items: list[Item],
    *,
    declaration_type: str = "IMZ",
    declarant: str = OTHER_DECLARANT,
    export_country: str | None = "CN",
    destination_country: str | None = "GB",
    authorisations: list[Authorisation] | None = None,
) -> Submission:
    return {
        "submission_id": "sub-1",
        "version": 1,
        "kind": "DECLARATION",
        "received_at": 0,
        "bundle": "",
        "function_code": "9",
        "trader_reference": "LRN-1",
        "declaration_type": declaration_type,
        "declarant_id": declarant,
        "parties": [],
        "authorisations": authorisations or [],
        "export_country": export_country,
        "destination_country": destination_country,
        "items": items,
    }


def plain_goods() -> Submission:
    return submission(
        [item(1, "73181500", "Steel screws", origin="CN")],
        declarant=AEO_DECLARANT,
        authorisations=[{"category_code": "AEOC", "holder_id": AEO_DECLARANT}],
    )


def plants() -> Submission:
    return submission([item(1, "06029050", "Live plants", origin="NL", docs=["N851"])], export_country="NL")


def chemical() -> Submission:
    return submission(
        [item(1, "29221500", "Triethanolamine", origin="DE", cas=["102-71-6"])], export_country="DE"
    )


def branded() -> Submission:
    return submission([item(1, "91021100", "ZENTRA quartz wristwatches", origin="HK")], export_country="HK")


def all_agencies() -> Submission:
    return submission(
        [
            item(1, "73181500", "Steel screws", origin="EG"),
            item(2, "06031100", "Cut roses", origin="EG"),
            item(3, "29309098", "Thiodiglycol", origin="EG", cas=["111-48-8"]),
            item(4, "91021100", "ZENTRA chronograph watches", origin="EG"),
        ],
        export_country="EG",
    )


@pytest.fixture(scope="module")
def table() -> RuleTable:
    return load_rules(on=TODAY)


def plan(routes: dict[str, list[Any]]) -> dict[str, list[tuple[int, str]]]:
    return {agency: [(r["item"], r["rule"]) for r in reasons] for agency, reasons in routes.items()}


# --- the sample declarations ----------------------------------------------------------------------


def test_plain_goods_go_to_customs_only(table: RuleTable) -> None:
    assert plan(route(plain_goods(), table)) == {"customs": [(1, "CUS-ALL")]}


def test_plants_go_to_customs_and_sps(table: RuleTable) -> None:
    assert plan(route(plants(), table)) == {"customs": [(1, "CUS-ALL")], "sps": [(1, "SPS-PLANTS-06")]}


def test_scheduled_chemical_goes_to_cwc_by_cas(table: RuleTable) -> None:
    routes = route(chemical(), table)
    assert plan(routes) == {"customs": [(1, "CUS-ALL")], "cwc": [(1, "CWC-CAS")]}
    assert "102-71-6" in routes["cwc"][0]["why"]


def test_branded_watches_go_to_ipr_naming_the_holder(table: RuleTable) -> None:
    routes = route(branded(), table)
    assert plan(routes) == {"customs": [(1, "CUS-ALL")], "ipr": [(1, "IPR-REGISTER")]}
    assert "Zentra Horology SA" in routes["ipr"][0]["why"]
    assert "ZENTRA" in routes["ipr"][0]["why"]


def test_all_agencies_each_see_only_their_items(table: RuleTable) -> None:
    routes = route(all_agencies(), table)
    assert list(routes) == ["customs", "sps", "cwc", "ipr"]
    assert plan(routes) == {
        "customs": [(1, "CUS-ALL"), (2, "CUS-ALL"), (3, "CUS-ALL"), (4, "CUS-ALL")],
        "sps": [(2, "SPS-PLANTS-06")],
        "cwc": [(3, "CWC-CAS")],
        "ipr": [(4, "IPR-REGISTER")],
    }


def test_screws_and_unbranded_watches_go_to_customs_only(table: RuleTable) -> None:
    sub = submission(
        [
            item(1, "73181500", "Steel screws"),
            item(2, "91021100", "Quartz wristwatches"),
            item(3, "91021100", "Zentralux wristwatches"),  # brand must be a whole word
            item(4, "73181500", "ZENTRA steel screws"),  # brand, but HS chapter 73 is not among its classes
        ]
    )
    assert list(route(sub, table)) == ["customs"]


def test_why_fills_placeholders(table: RuleTable) -> None:
    routes = route(plants(), table)
    assert routes["customs"][0]["why"].startswith("Customs decides on every item: classification of 06029050")
    assert "chapter 06" in routes["sps"][0]["why"]


# --- packaged rules: each agency's scope ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("01022110", "SPS-ANIMALS-01"),
        ("05040000", "SPS-ANIMALS-01"),
        ("14049000", "SPS-PLANTS-06"),
        ("15079010", "SPS-FATS-15"),
        ("16023211", "SPS-ANIMALFOOD-16"),
        ("24011035", "SPS-FOOD-17"),
        ("44032100", "SPS-WOOD-44"),
        ("52010010", "SPS-COTTON-52"),
    ],
)
def test_sps_scope_by_hs(table: RuleTable, code: str, rule: str) -> None:
    assert plan(route(submission([item(1, code)]), table))["sps"] == [(1, rule)]


@pytest.mark.parametrize("code", ["25010010", "52081100", "73181500", "45011000"])
def test_outside_sps_scope(table: RuleTable, code: str) -> None:
    assert "sps" not in route(submission([item(1, code)]), table)


def test_sps_document_routes_goods_outside_the_chapters(table: RuleTable) -> None:
    routes = route(submission([item(1, "73181500", docs=["C085"])]), table)
    assert plan(routes)["sps"] == [(1, "SPS-DOCS")]
    assert "C085" in routes["sps"][0]["why"]


def test_first_matching_rule_wins_per_agency_and_item(table: RuleTable) -> None:
    # matches SPS-PLANTS-06 and SPS-DOCS; the earlier rule in the file gives the reason, once
    routes = route(submission([item(1, "06031100", docs=["N851"])]), table)
    assert plan(routes)["sps"] == [(1, "SPS-PLANTS-06")]


def test_cwc_by_hs_subheading_without_cas(table: RuleTable) -> None:
    routes = route(submission([item(1, "29221500", "Triethanolamine")]), table)
    assert plan(routes)["cwc"] == [(1, "CWC-HS")]
    assert "292215" in routes["cwc"][0]["why"]


def test_cwc_exempted_cas_is_not_routed(table: RuleTable) -> None:
    routes = route(submission([item(1, "29221990", "DMAE", cas=["108-01-0"])]), table)
    assert "cwc" not in routes


# --- each rule kind, with a rule file of our own -------------------------------------------------------

CUS_ALL = {"id": "CUS-ALL", "agency": "customs", "why": "always"}


def write_rules(tmp_path: Path, *rules: dict[str, Any], sets: list[dict[str, Any]] | None = None) -> Path:
    path = tmp_path / "rules.json"
    body = (
        sets
        if sets is not None
        else [{"version": "t1", "effective_from": "2026-01-01", "rules": [CUS_ALL, *rules]}]
    )
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def routed(tmp_path: Path, rule: dict[str, Any], sub: Submission) -> list[tuple[int, str]]:
    table = load_rules(write_rules(tmp_path, {"id": "R", "agency": "sps", "why": "w", **rule}), on=TODAY)
    return plan(route(sub, table)).get("sps", [])


def test_hs_prefixes_match_chapter_heading_and_subheading(tmp_path: Path) -> None:
    sub = submission([item(1, "44011100"), item(2, "44071100"), item(3, "44140000"), item(4, "94030000")])
    rule = {"hs_prefixes": ["4401", "440711", "4414"]}
    assert routed(tmp_path, rule, sub) == [(1, "R"), (2, "R"), (3, "R")]


def test_document_codes(tmp_path: Path) -> None:
    sub = submission([item(1, "73181500", docs=["N853"]), item(2, "73181500", docs=["N851"])])
    assert routed(tmp_path, {"document_codes": ["N853"]}, sub) == [(1, "R")]


def test_origin_countries(tmp_path: Path) -> None:
    sub = submission([item(1, "73181500", origin="BR"), item(2, "73181500", origin="CN")])
    assert routed(tmp_path, {"origin_countries": ["BR"]}, sub) == [(1, "R")]


def test_trading_countries_export_and_destination(tmp_path: Path) -> None:
    rule = {"trading_countries": ["EG"], "why": "partner {country}"}
    assert routed(tmp_path, rule, submission([item(1, "73181500")], export_country="EG")) == [(1, "R")]
    exported = submission(
        [item(1, "73181500")], declaration_type="EXA", export_country="GB", destination_country="EG"
    )
    assert routed(tmp_path, rule, exported) == [(1, "R")]
    assert routed(tmp_path, rule, submission([item(1, "73181500")], export_country="DE")) == []


def test_cas_numbers_and_named_cas_list(tmp_path: Path) -> None:
    sub = submission(
        [item(1, "29000000", cas=["64-17-5"]), item(2, "29000000", cas=["75-44-5"]), item(3, "29")]
    )
    assert routed(tmp_path, {"cas_numbers": ["64-17-5"]}, sub) == [(1, "R")]
    assert routed(tmp_path, {"cas_list": "cwc-schedules"}, sub) == [(2, "R")]
    both = {"cas_numbers": ["64-17-5"], "cas_list": "cwc-schedules"}
    assert routed(tmp_path, both, sub) == [(1, "R"), (2, "R")]


def test_named_hs_list(tmp_path: Path) -> None:
    sub = submission([item(1, "28121100"), item(2, "28121900"), item(3, "28129000")])
    assert routed(tmp_path, {"hs_list": "cwc-hs"}, sub) == [(1, "R"), (2, "R")]


def test_declaration_types(tmp_path: Path) -> None:
    rule = {"declaration_types": ["EX"]}
    assert routed(tmp_path, rule, submission([item(1, "73181500")], declaration_type="EXA")) == [(1, "R")]
    assert routed(tmp_path, rule, submission([item(1, "73181500")], declaration_type="IMZ")) == []


def test_aeo_true_and_false(tmp_path: Path) -> None:
    assert routed(tmp_path, {"aeo": True}, plain_goods()) == [(1, "R")]
    assert routed(tmp_path, {"aeo": False}, plain_goods()) == []
    not_holder = submission(
        [item(1, "73181500")], authorisations=[{"category_code": "AEOC", "holder_id": "GB000000000001"}]
    )
    assert routed(tmp_path, {"aeo": False}, not_holder) == [(1, "R")]


def test_description_terms_are_whole_words(tmp_path: Path) -> None:
    sub = submission([item(1, "73181500", "Seeds, TREATED"), item(2, "73181500", "Untreated seeds")])
    assert routed(tmp_path, {"description_terms": ["treated"]}, sub) == [(1, "R")]


def test_ipr_register_condition(tmp_path: Path) -> None:
    sub = submission([item(1, "64039900", "Korvante trainers"), item(2, "91021100", "Korvante watch")])
    assert routed(tmp_path, {"ipr_register": True, "why": "{brand} of {holder}"}, sub) == [(1, "R")]


def test_conditions_are_anded_and_values_ored(tmp_path: Path) -> None:
    sub = submission(
        [
            item(1, "06031100", origin="KE"),
            item(2, "06031100", origin="CO"),
            item(3, "06031100", origin="NL"),
            item(4, "07020000", origin="KE"),
        ]
    )
    rule = {"hs_prefixes": ["0603"], "origin_countries": ["KE", "CO"]}
    assert routed(tmp_path, rule, sub) == [(1, "R"), (2, "R")]


# --- effective dates ---------------------------------------------------------------------------------


def test_packaged_rule_set_chosen_by_date() -> None:
    assert load_rules(on=date(2025, 12, 31)).version == "2025.1"
    assert load_rules(on=date(2026, 1, 1)).version == "2026.1"
    cotton = submission([item(1, "52010010", "Raw cotton")])
    assert "sps" not in route(cotton, load_rules(on=date(2025, 6, 1)))
    assert "sps" in route(cotton, load_rules(on=date(2026, 6, 1)))


def test_no_rule_set_effective(tmp_path: Path) -> None:
    with pytest.raises(NoRuleSetError, match="2024-12-31"):
        load_rules(on=date(2024, 12, 31))
    gap = [
        {"version": "a", "effective_from": "2026-01-01", "effective_to": "2026-03-31", "rules": [CUS_ALL]},
        {"version": "b", "effective_from": "2026-05-01", "rules": [CUS_ALL]},
    ]
    path = write_rules(tmp_path, sets=gap)
    assert load_rules(path, on=date(2026, 3, 31)).version == "a"
    with pytest.raises(NoRuleSetError):
        load_rules(path, on=date(2026, 4, 15))


def test_overlapping_rule_sets_are_refused(tmp_path: Path) -> None:
    sets = [
        {"version": "a", "effective_from": "2026-01-01", "rules": [CUS_ALL]},
        {"version": "b", "effective_from": "2026-06-01", "rules": [CUS_ALL]},
    ]
    path = write_rules(tmp_path, sets=sets)
    assert load_rules(path, on=date(2026, 2, 1)).version == "a"
    with pytest.raises(NoRuleSetError, match="a, b"):
        load_rules(path, on=date(2026, 7, 1))


# --- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "X", "agency": "police", "why": "w"}, "agency"),
        ({"id": "X", "agency": "sps", "why": "w", "hs_prefix": ["01"]}, "unknown keys"),
        ({"id": "X", "agency": "sps", "why": "{cas}", "hs_prefixes": ["01"]}, "cas"),
        ({"id": "X", "agency": "sps", "why": "w", "cas_list": "everything"}, "cas_list"),
        ({"id": "X", "agency": "sps", "why": "w", "hs_prefixes": ["0a"]}, "digits"),
        ({"id": "X", "agency": "sps", "why": "w", "aeo": "yes"}, "true or false"),
        ({"id": "X", "agency": "sps", "why": "w", "description_terms": ["two words"]}, "one word"),
        ({"id": "CUS-ALL", "agency": "sps", "why": "w"}, "duplicate"),
    ],
)
def test_bad_rules_are_refused_with_the_rule_named(
    tmp_path: Path, rule: dict[str, Any], message: str
) -> None:
    with pytest.raises(RuleTableError, match=message):
        load_rules(write_rules(tmp_path, rule), on=TODAY)


def test_customs_catch_all_is_required(tmp_path: Path) -> None:
    sets = [
        {"version": "t", "effective_from": "2026-01-01", "rules": [{"id": "S", "agency": "sps", "why": "w"}]}
    ]
    with pytest.raises(RuleTableError, match="customs must decide on every item"):
        load_rules(write_rules(tmp_path, sets=sets), on=TODAY)


def test_request_ids_are_unguessable() -> None:
    from broker._router import new_request_id  # noqa: PLC0415

    first, second = new_request_id("S", 1, "sps"), new_request_id("S", 1, "sps")
    assert first.startswith("S:1:sps:")
    assert first != second  # a nonce: nobody can quote a request before the hub sent it
    assert len(first.rsplit(":", 1)[1]) == 16
