"""Rule set 2026.2: plant health, animal health and food safety apart; direction, additional type, exceptions;
the rule set effective on each submission's received date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from broker._router import Router
from bus.memory import MemoryBus
from routing import RuleTable, RuleTableError, explain, load_rule_book, load_rules, route
from schemas import Submission
from tests.test_routing import CUS_ALL, item, plan, submission, write_rules

ON = date(2026, 12, 1)


@pytest.fixture(scope="module")
def table() -> RuleTable:
    return load_rules(on=ON)


def frontier(*items: Any, origin: str = "CN", declaration_type: str = "IMA") -> Submission:
    return submission(list(items), declaration_type=declaration_type, export_country=origin)


def sps_rules(sub: Submission, table: RuleTable) -> list[tuple[int, str]]:
    return plan(route(sub, table)).get("sps", [])


# --- the three concerns -------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "origin", "rule"), [
    ("01012100", "US", "SPS-AH-LIVE-ANIMALS"),
    ("03011100", "SG", "SPS-AH-LIVE-ANIMALS"),
    ("02071290", "AR", "SPS-AH-ANIMAL-PRODUCTS"),
    ("04061030", "CH", "SPS-AH-ANIMAL-PRODUCTS"),
    ("16023211", "TH", "SPS-AH-ANIMAL-PRODUCTS"),
    ("06031100", "KE", "SPS-PH-IMPORT"),
    ("07019010", "EG", "SPS-PH-IMPORT"),
    ("08081080", "ZA", "SPS-PH-IMPORT"),
    ("44071100", "RU", "SPS-PH-IMPORT"),
    ("10019900", "IN", "SPS-PH-GRAIN"),
    ("08022200", "TR", "SPS-FS-HAZELNUTS"),
    ("12024200", "AR", "SPS-FS-GROUNDNUTS"),
    ("08042090", "TR", "SPS-FS-DRIED-FIGS"),
])
def test_each_concern_has_its_own_rule(table: RuleTable, code: str, origin: str, rule: str) -> None:
    routes = route(frontier(item(1, code, origin=origin)), table)
    assert plan(routes)["sps"] == [(1, rule)]
    concern = rule.split("-")[1]
    assert {"AH": "Animal health", "PH": "Plant health", "FS": "Food safety"}[concern] in routes["sps"][0]["why"]


@pytest.mark.parametrize(("code", "goods"), [
    ("22042100", "wine"), ("22030001", "beer"), ("22083000", "whisky"), ("22089069", "gin"),
    ("20091100", "orange juice"), ("18040000", "cocoa butter"), ("13022010", "pectin"),
    ("24031990", "tobacco preparations"), ("19059030", "bread"), ("17019910", "sugar"),
])
def test_goods_needing_no_sps_certificate_are_not_routed_to_sps(table: RuleTable, code: str, goods: str) -> None:
    assert sps_rules(frontier(item(1, code, origin="FR")), table) == [], goods


def test_the_previous_rule_set_still_routed_them_by_chapter() -> None:
    wine = frontier(item(1, "22042100", origin="FR"))
    assert sps_rules(wine, load_rules(on=date(2026, 11, 30))) == [(1, "SPS-FOOD-17")]
    assert sps_rules(wine, load_rules(on=ON)) == []


def test_high_risk_food_only_from_the_listed_origins(table: RuleTable) -> None:
    assert sps_rules(frontier(item(1, "08022200", origin="IT")), table) == []
    assert sps_rules(frontier(item(1, "10019900", origin="FR")), table) == []


@pytest.mark.parametrize("code", ["08039010", "08043000", "08041000", "08106000", "08011100"])
def test_exempt_fruit_is_not_routed_and_says_why(table: RuleTable, code: str) -> None:
    routes, not_routed = explain(frontier(item(1, code, origin="CR")), table)
    assert "sps" not in routes
    assert [(n["item"], n["agency"], n["rule"]) for n in not_routed] == [(1, "sps", "SPS-PH-IMPORT")]
    assert "Annex XI Part C" in not_routed[0]["why"]


# --- direction -----------------------------------------------------------------------------------------------


def test_export_of_plants_asks_for_the_export_certificate_and_exported_meat_is_not_routed(table: RuleTable) -> None:
    sub = frontier(item(1, "06029050", origin="GB"), item(2, "02013000", origin="GB"), declaration_type="EXA")
    routes = route(sub, table)
    assert plan(routes).get("sps") == [(1, "SPS-PH-EXPORT")]
    assert "export phytosanitary certificate" in routes["sps"][0]["why"]


def test_direction_in_the_record_wins_over_the_declaration_type(table: RuleTable) -> None:
    sub = frontier(item(1, "06029050", origin="GB"))
    assert sps_rules(sub, table) == [(1, "SPS-PH-IMPORT")]
    assert sps_rules({**sub, "direction": "EXPORT"}, table) == [(1, "SPS-PH-EXPORT")]


def test_transit_of_animal_products_is_routed_and_of_plants_not(table: RuleTable) -> None:
    sub = frontier(item(1, "02013000", origin="AR"), item(2, "06031100", origin="KE"), declaration_type="TRA")
    assert sps_rules(sub, table) == [(1, "SPS-AH-ANIMAL-PRODUCTS")]


# --- supplementary declarations ------------------------------------------------------------------------------


@pytest.mark.parametrize("declaration_type", ["IMZ", "IMY", "IMX"])
def test_supplementary_declarations_are_decided_by_customs_only(table: RuleTable, declaration_type: str) -> None:
    sub = submission([item(1, "06031100", origin="KE"), item(2, "29309098", "Thiodiglycol", cas=["111-48-8"]),
                      item(3, "91021100", "ZENTRA chronograph watches", origin="HK"),
                      item(4, "02013000", origin="AR", docs=["N853"])], declaration_type=declaration_type)
    routes, not_routed = explain(sub, table)
    assert list(routes) == ["customs"]
    assert {(n["item"], n["agency"]) for n in not_routed} == {(1, "sps"), (2, "cwc"), (3, "ipr"), (4, "sps")}
    assert all("supplementary" in n["why"] for n in not_routed)


def test_simplified_and_pre_lodged_declarations_are_still_controlled(table: RuleTable) -> None:
    for declaration_type in ("IMC", "IMD", "IMF", "IMJ", "IMK"):
        assert sps_rules(frontier(item(1, "06031100", origin="KE"), declaration_type=declaration_type), table) == [
            (1, "SPS-PH-IMPORT")]


# --- the rule language: direction, additional type, exceptions ------------------------------------------


def test_direction_and_additional_type_conditions(tmp_path: Path) -> None:
    rule = {"id": "R", "agency": "sps", "why": "{direction} {additional_type}", "directions": ["EXPORT"],
            "additional_types": ["FRONTIER", "PRE_LODGED"]}
    table = load_rules(write_rules(tmp_path, rule), on=ON)
    rows = [("EXA", True), ("EXD", True), ("EXC", False), ("IMA", False)]
    for declaration_type, routed in rows:
        routes = route(frontier(item(1, "73181500"), declaration_type=declaration_type), table)
        assert ("sps" in routes) is routed, declaration_type
    assert route(frontier(item(1, "73181500"), declaration_type="EXA"), table)["sps"][0]["why"] == "EXPORT FRONTIER"


def test_an_exception_stops_the_rule_and_a_later_rule_may_still_route(tmp_path: Path) -> None:
    first = {"id": "R1", "agency": "sps", "why": "w1", "hs_prefixes": ["0803"],
             "except": [{"origin_countries": ["CR"], "why": "not from {country}"}]}
    second = {"id": "R2", "agency": "sps", "why": "w2", "document_codes": ["N851"]}
    table = load_rules(write_rules(tmp_path, first, second), on=ON)
    routes, not_routed = explain(frontier(item(1, "08039010", origin="CR"), item(2, "08039010", origin="CO"),
                                          item(3, "08039010", origin="CR", docs=["N851"])), table)
    assert plan(routes)["sps"] == [(2, "R1"), (3, "R2")]
    assert not_routed == [{"item": 1, "agency": "sps", "rule": "R1", "why": "not from CR"}]


@pytest.mark.parametrize(("rule", "message"), [
    ({"directions": ["INWARD"]}, "directions must be among"),
    ({"additional_types": ["SUPPLEMENTAL"]}, "additional_types must be among"),
    ({"except": [{"why": "no condition"}]}, "at least one condition"),
    ({"except": [{"hs_prefixes": ["01"]}]}, "needs a why"),
    ({"except": [{"hs_prefixes": ["01"], "why": "{cas}"}]}, "do not provide"),
    ({"except": [{"hs_prefixes": ["01"], "why": "w", "colour": "red"}]}, "unknown keys"),
    ({"except": {"hs_prefixes": ["01"]}}, "except is a list"),
])
def test_bad_conditions_and_exceptions_are_refused(tmp_path: Path, rule: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleTableError, match=message):
        load_rules(write_rules(tmp_path, {"id": "R", "agency": "sps", "why": "w", **rule}), on=ON)


# --- the rule set effective on each submission's date ------------------------------------------------------


def ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp() * 1000)


def test_book_compiles_every_set_once_and_picks_by_date() -> None:
    book = load_rule_book()
    assert [t.version for t in book.tables] == ["2025.1", "2026.1", "2026.2"]
    assert book.on(date(2026, 11, 30)) is book.on(date(2026, 6, 1))
    assert book.on(ON).version == "2026.2"


def test_router_routes_each_submission_with_the_set_of_its_received_date() -> None:
    router = Router(bus=MemoryBus(), book=load_rule_book(), clock=lambda: ms(ON))
    assert router._table(ms(date(2026, 11, 30)), ms(ON)).version == "2026.1"
    assert router._table(ms(ON), ms(ON)).version == "2026.2"
    assert router._table(ms(date(2025, 3, 1)), ms(ON)).version == "2025.1"
    # received before any set took effect: the set in force when it is routed
    assert router._table(ms(date(2024, 3, 1)), ms(ON)).version == "2026.2"
    pinned = load_rules(on=ON)  # a table handed in is used for every submission (tests, tools)
    assert Router(bus=MemoryBus(), rules=pinned)._table(ms(date(2025, 3, 1)), ms(ON)) is pinned


def test_cus_all_is_unchanged(table: RuleTable) -> None:
    assert [r.id for r in table.rules if r.agency == "customs"] == [CUS_ALL["id"]]
