"""The customs risk engine: lanes, scoring, AEO by role, random selection, base-currency values and
declaration types. Pure: small requests built here, settings built from small documents."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from adapters.customs import CustomsEngine, CustomsRules, aeo_holder, aeo_holders, random_draw
from refdata import (
    ReferenceDataError,
    customs_risk_settings,
    parse_risk_settings,
    parse_value_benchmarks,
    value_benchmarks,
)
from schemas import AgencyRequest, Authorisation, Item, ItemDecision, Party
from schemas._records import AdditionalType, Direction

TODAY = date(2026, 12, 1)
IMPORTER, DECLARANT, AGENT, EXPORTER = "GB100000000001", "GB200000000002", "GB300000000003", "GB400000000004"

BASE: dict[str, Any] = {
    "source": "test",
    "date": "2026-12-01",
    "base_currency": "GBP",
    "thresholds": {"blue": 30, "yellow": 60, "red": 100},
    "random_selection": {"rate": 0.0, "lane": "red", "salt": "s", "why": "random selection"},
    "aeo": {
        "categories": ["AEOC", "AEOS"],
        "roles": {
            "IMPORT": ["IMPORTER", "DECLARANT", "AGENT"],
            "EXPORT": ["EXPORTER", "DECLARANT", "AGENT"],
            "": ["DECLARANT"],
        },
        "random_rate_factor": 0.5,
        "why": "aeo",
    },
    "profiles": [
        {"id": "RED-ARMS", "lane": "red", "mandatory": True, "why": "arms", "hs_prefixes": ["9301"]},
        {"id": "RED-SOFT", "lane": "red", "why": "fireworks", "hs_prefixes": ["3604"]},
        {"id": "YELLOW-ROUTE", "lane": "yellow", "why": "route", "route_countries": ["IR"]},
        {"id": "BLUE-EXCISE", "lane": "blue", "why": "excise", "hs_prefixes": ["2208"]},
        {"id": "W-ORIGIN", "weight": 30, "why": "origin", "origin_countries": ["XX"]},
        {"id": "W-PARTY", "weight": 40, "why": "listed party", "party_ids": ["GB999999999999"]},
        {"id": "W-PARTY-COUNTRY", "weight": 30, "why": "party country", "party_countries": ["YY"]},
        {"id": "W-EXPORT-85", "weight": 60, "why": "export electronics", "hs_prefixes": ["85"],
         "directions": ["EXPORT"]},
        {"id": "W-SIMPLIFIED-22", "weight": 30, "why": "simplified drinks", "hs_prefixes": ["22"],
         "additional_types": ["SIMPLIFIED"]},
        {"id": "W-IMB", "weight": 30, "why": "occasional", "declaration_types": ["IMB"]},
        {"id": "HIGH-VALUE", "weight": 60, "why": "high value", "min_base_value": 100000},
        {"id": "UNDERVALUE", "weight": 60, "why": "undervalued", "below_benchmark": 0.5},
    ],
}


def rules(**changes: Any) -> CustomsRules:
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return CustomsRules(settings=parse_risk_settings(doc), benchmarks=value_benchmarks())


def item(seq: int = 1, code: str = "73181500", *, origin: str | None = "CN", value: float | None = 1000.0,
         currency: str | None = "GBP", base_value: float | None = None, kg: float | None = None,
         units: float | None = None) -> Item:
    it: Item = {
        "sequence": seq, "description": "goods", "commodity_code": code, "origin_country": origin,
        "cas_numbers": [], "documents": [], "quantity": units, "quantity_unit": None, "net_mass_kg": kg,
        "value": value, "currency": currency,
    }
    if base_value is not None:
        it["base_value"] = base_value
    return it


def request(items: list[Item], *, declaration_type: str = "IMA", direction: Direction = "IMPORT",
            additional_type: AdditionalType = "FRONTIER", parties: list[Party] | None = None,
            authorisations: list[Authorisation] | None = None, declarant: str = DECLARANT,
            export_country: str | None = "CN", destination_country: str | None = "GB",
            submission_id: str = "sub-1", version: int = 1, amendment: bool = False) -> AgencyRequest:
    req: AgencyRequest = {
        "request_id": f"{submission_id}:{version}:customs", "submission_id": submission_id, "version": version,
        "agency": "customs", "requested_at": 0, "trader_reference": "LRN", "declaration_type": declaration_type,
        "declarant_id": declarant, "parties": parties or [], "authorisations": authorisations or [],
        "export_country": export_country, "destination_country": destination_country, "items": items,
        "reasons": [], "direction": direction, "additional_type": additional_type,
    }
    if amendment:
        req["kind"] = "AMENDMENT"
    return req


def decide(engine: CustomsEngine, req: AgencyRequest) -> ItemDecision:
    decisions = engine.decide(req, today=TODAY)
    assert len(decisions) == len(req["items"]) == 1
    return decisions[0]


def lane(engine: CustomsEngine, req: AgencyRequest) -> tuple[str, str, str | None]:
    d = decide(engine, req)
    return d["outcome"], d["code"], d.get("hold_reason")


def aeo(holder: str | None, category: str = "AEOC") -> list[Authorisation]:
    return [{"category_code": category, "holder_id": holder}]


def party(role: str, pid: str, country: str | None = "GB") -> Party:
    return {"role": role, "id": pid, "name": None, "country": country}


# --- lanes ----------------------------------------------------------------------------------------------


def test_green_lane_when_nothing_selects() -> None:
    d = decide(CustomsEngine(rules()), request([item()]))
    assert (d["outcome"], d["code"], d.get("hold_reason")) == ("RELEASE", "C01", None)


def test_red_lane_is_a_physical_inspection_hold() -> None:
    d = decide(CustomsEngine(rules()), request([item(code="93011000")]))
    assert (d["outcome"], d["code"], d["hold_reason"]) == ("HOLD", "H01", "INSPECTION")
    assert "RED-ARMS" in d["reason"]


def test_yellow_lane_is_a_documentary_hold() -> None:
    d = decide(CustomsEngine(rules()), request([item()], export_country="IR"))
    assert (d["outcome"], d["code"], d["hold_reason"]) == ("HOLD", "H02", "DOCUMENTS_REQUIRED")
    assert "YELLOW-ROUTE" in d["reason"]


def test_blue_lane_releases_and_says_audit() -> None:
    d = decide(CustomsEngine(rules()), request([item(code="22083000")]))
    assert (d["outcome"], d["code"]) == ("RELEASE", "C03")
    assert "post-clearance audit" in d["reason"]
    assert "BLUE-EXCISE" in d["reason"]


def test_most_severe_lane_wins() -> None:
    req = request([item(code="93011000")], export_country="IR")  # red and yellow profiles
    assert lane(CustomsEngine(rules()), req) == ("HOLD", "H01", "INSPECTION")


# --- scoring --------------------------------------------------------------------------------------------


def test_weights_add_up_and_thresholds_give_the_lane() -> None:
    engine = CustomsEngine(rules())
    assert lane(engine, request([item(origin="XX")])) == ("RELEASE", "C03", None)  # 30: blue
    two = request([item(origin="XX")], parties=[party("SELLER", "CN1", "YY")])  # 30 + 30: yellow
    assert lane(engine, two) == ("HOLD", "H02", "DOCUMENTS_REQUIRED")
    three = request([item(origin="XX")], parties=[party("SELLER", "GB999999999999", "YY")])  # 100: red
    d = decide(engine, three)
    assert (d["code"], d["hold_reason"]) == ("H01", "INSPECTION")
    assert "score 100" in d["reason"]
    assert all(p in d["reason"] for p in ("W-ORIGIN", "W-PARTY", "W-PARTY-COUNTRY"))


def test_thresholds_are_read_from_the_settings() -> None:
    strict = CustomsEngine(rules(thresholds={"blue": 10, "yellow": 20, "red": 30}))
    assert lane(strict, request([item(origin="XX")])) == ("HOLD", "H01", "INSPECTION")


def test_direction_additional_type_and_declaration_type_criteria() -> None:
    engine = CustomsEngine(rules())
    phones = [item(code="85171300")]
    assert lane(engine, request(phones))[1] == "C01"  # W-EXPORT-85 is for exports
    export = request(phones, declaration_type="EXA", direction="EXPORT", destination_country="US")
    assert lane(engine, export)[1] == "H02"
    gin = [item(code="22085011")]
    # BLUE-EXCISE (2208) plus W-SIMPLIFIED-22 30 on a simplified declaration: still blue; plus IMB 30: yellow
    assert lane(engine, request(gin, declaration_type="IMC", additional_type="SIMPLIFIED"))[1] == "C03"
    assert lane(engine, request(gin, declaration_type="IMB", additional_type="SIMPLIFIED"))[1] == "H02"


def test_undervaluation_against_the_benchmark() -> None:
    engine = CustomsEngine(rules())
    # 7318 screws: benchmark 1.50 GBP/kg (refdata/customs-value-benchmarks.json)
    cheap = request([item(value=700.0, kg=1000.0)])  # 0.70 < 0.75
    d = decide(engine, cheap)
    assert d["code"] == "H02"
    assert "UNDERVALUE" in d["reason"]
    assert "0.70 GBP/kg" in d["reason"]
    assert lane(engine, request([item(value=800.0, kg=1000.0)]))[1] == "C01"  # 0.80 >= 0.75
    assert lane(engine, request([item(value=700.0, kg=None)]))[1] == "C01"  # no mass: no unit value
    # 6109 T-shirts: per supplementary unit (2.50 GBP)
    assert lane(engine, request([item(code="61091000", value=100.0, units=100.0)]))[1] == "H02"
    assert lane(engine, request([item(code="61091000", value=300.0, units=100.0)]))[1] == "C01"
    # no benchmark for the heading: nothing to compare
    assert lane(engine, request([item(code="39269097", value=1.0, kg=1000.0)]))[1] == "C01"


def test_benchmark_compares_the_base_currency_value() -> None:
    engine = CustomsEngine(rules())
    # 1000 USD at 1.27 USD per GBP = 787.40 GBP for 1000 kg: 0.79 GBP/kg, above half of 1.50
    assert lane(engine, request([item(value=1000.0, currency="USD", kg=1000.0)]))[1] == "C01"
    # 1000 JPY = 5.26 GBP: far below
    assert lane(engine, request([item(value=1000.0, currency="JPY", kg=1000.0)]))[1] == "H02"


# --- base-currency thresholds ---------------------------------------------------------------------------


def test_value_threshold_is_in_the_base_currency() -> None:
    engine = CustomsEngine(rules())
    # 150,000 JPY is about 789 GBP: not a high value, whatever the number says
    assert lane(engine, request([item(value=150_000.0, currency="JPY")]))[1] == "C01"
    # 120,000 EUR is about 104,348 GBP: high value
    assert lane(engine, request([item(value=120_000.0, currency="EUR")]))[1] == "H02"
    # 110,000 USD is about 86,614 GBP: not
    assert lane(engine, request([item(value=110_000.0, currency="USD")]))[1] == "C01"


def test_the_records_base_value_is_used_when_present() -> None:
    engine = CustomsEngine(rules())
    # the record's base value wins over a conversion of the declared amount
    assert lane(engine, request([item(value=1.0, currency="GBP", base_value=100_000.0)]))[1] == "H02"
    assert lane(engine, request([item(value=500_000.0, currency="GBP", base_value=99_999.0)]))[1] == "C01"


def test_unknown_currency_or_missing_value_selects_nothing_on_value() -> None:
    engine = CustomsEngine(rules())
    assert lane(engine, request([item(value=10_000_000.0, currency="XYZ")]))[1] == "C01"
    assert lane(engine, request([item(value=None)]))[1] == "C01"


# --- AEO by role ----------------------------------------------------------------------------------------


def test_aeo_importer_declaring_through_an_agent_keeps_its_facilitation() -> None:
    engine = CustomsEngine(rules())
    parties = [party("IMPORTER", IMPORTER), party("DECLARANT", AGENT)]
    costly = [item(value=200_000.0)]
    plain = request(costly, parties=parties, declarant=AGENT)
    assert lane(engine, plain)[1] == "H02"
    d = decide(engine, request(costly, parties=parties, declarant=AGENT, authorisations=aeo(IMPORTER)))
    assert d["code"] == "C02"
    assert "documentary check waived" in d["reason"]
    assert f"IMPORTER {IMPORTER}" in d["reason"]


@pytest.mark.parametrize(
    ("direction", "role", "counts"),
    [
        ("IMPORT", "IMPORTER", True),
        ("IMPORT", "AGENT", True),
        ("IMPORT", "EXPORTER", False),  # the foreign exporter of an import does not answer for it here
        ("EXPORT", "EXPORTER", True),
        ("EXPORT", "IMPORTER", False),
        ("EXPORT", "CARRIER", False),
    ],
)
def test_aeo_counts_only_in_the_role_the_direction_names(direction: Direction, role: str, counts: bool) -> None:
    holder = "GB777777777777"
    req = request([item(value=200_000.0)], direction=direction, declaration_type=f"{direction[:2]}A",
                  parties=[party(role, holder)], authorisations=aeo(holder, "AEOS"))
    assert lane(CustomsEngine(rules()), req)[1] == ("C02" if counts else "H02")


def test_aeo_declarant_with_or_without_holder_id() -> None:
    engine = CustomsEngine(rules())
    costly = [item(value=200_000.0)]
    assert lane(engine, request(costly, authorisations=aeo(None)))[1] == "C02"
    assert lane(engine, request(costly, authorisations=aeo(DECLARANT)))[1] == "C02"
    assert lane(engine, request(costly, authorisations=aeo(DECLARANT, "AEOF")))[1] == "H02"  # not an AEO category
    assert lane(engine, request(costly, authorisations=aeo("GB000000000009")))[1] == "H02"  # nobody here


def test_aeo_turns_a_non_mandatory_red_into_yellow_never_a_mandatory_one() -> None:
    engine = CustomsEngine(rules())
    fireworks = request([item(code="36041000")], authorisations=aeo(None))
    d = decide(engine, fireworks)
    assert (d["code"], d["hold_reason"]) == ("H02", "DOCUMENTS_REQUIRED")
    assert "physical inspection replaced by a documentary check" in d["reason"]
    arms = request([item(code="93011000")], authorisations=aeo(None))
    assert lane(engine, arms) == ("HOLD", "H01", "INSPECTION")


def test_aeo_helpers() -> None:
    parties = [party("IMPORTER", IMPORTER), party("AGENT", AGENT)]
    auths = aeo(IMPORTER) + aeo(AGENT, "AEOS") + aeo(EXPORTER)
    assert aeo_holders(auths, parties, DECLARANT, roles={"IMPORTER", "AGENT"}) == [
        f"IMPORTER {IMPORTER} (AEOC)", f"AGENT {AGENT} (AEOS)"]
    assert aeo_holders(auths, parties, DECLARANT, roles={"EXPORTER"}) == []
    # routing's narrow question stays: does the declarant hold it?
    assert aeo_holder(aeo(DECLARANT), DECLARANT)
    assert aeo_holder(aeo(None), DECLARANT)
    assert not aeo_holder(aeo(IMPORTER), DECLARANT)


# --- random selection -----------------------------------------------------------------------------------


def test_random_draw_is_deterministic_and_depends_on_every_input() -> None:
    draw = random_draw("salt", "sub-1", 1, 1)
    assert draw == random_draw("salt", "sub-1", 1, 1)
    assert 0.0 <= draw < 1.0
    others = {random_draw("pepper", "sub-1", 1, 1), random_draw("salt", "sub-2", 1, 1),
              random_draw("salt", "sub-1", 2, 1), random_draw("salt", "sub-1", 1, 2)}
    assert draw not in others
    assert len(others) == 4


def random_hits(engine: CustomsEngine, n: int, **kw: Any) -> int:
    hits = 0
    for k in range(n):
        d = decide(engine, request([item()], submission_id=f"synthetic-{k}", **kw))
        hits += d["code"] == "H03"
    return hits


def test_random_selection_honours_the_rate() -> None:
    n = 4000
    engine = CustomsEngine(rules(random_selection={"rate": 0.05}))
    hits = random_hits(engine, n)
    assert abs(hits / n - 0.05) < 0.012  # about 3.5 standard deviations at n=4000
    assert random_hits(CustomsEngine(rules(random_selection={"rate": 0.0})), 500) == 0
    assert random_hits(CustomsEngine(rules(random_selection={"rate": 1.0})), 50) == 50


def test_random_selection_is_halved_for_aeo() -> None:
    n = 4000
    engine = CustomsEngine(rules(random_selection={"rate": 0.10}))
    hits = random_hits(engine, n, authorisations=aeo(None))
    assert abs(hits / n - 0.05) < 0.012


def test_random_selection_replays_agree_and_says_so() -> None:
    engine = CustomsEngine(rules(random_selection={"rate": 0.5}))
    for k in range(40):
        req = request([item()], submission_id=f"replay-{k}")
        first = decide(engine, req)
        assert decide(engine, copy.deepcopy(req)) == first  # a replay decides the same
        assert decide(CustomsEngine(rules(random_selection={"rate": 0.5})), req) == first
        if first["code"] == "H03":
            assert first["hold_reason"] == "INSPECTION"
            assert "random selection" in first["reason"].lower()


def test_random_selection_lane_and_salt_from_the_settings() -> None:
    yellow = CustomsEngine(rules(random_selection={"rate": 1.0, "lane": "yellow"}))
    d = decide(yellow, request([item()]))
    assert (d["code"], d["hold_reason"]) == ("H03", "DOCUMENTS_REQUIRED")
    blue = CustomsEngine(rules(random_selection={"rate": 1.0, "lane": "blue"}))
    d = decide(blue, request([item()]))
    assert (d["outcome"], d["code"]) == ("RELEASE", "C03")
    assert d["reason"].startswith("Random selection")
    salts = [rules(random_selection={"rate": 0.5, "salt": s}) for s in ("a", "b")]
    answers = [[decide(CustomsEngine(r), request([item()], submission_id=f"s-{k}"))["code"] for k in range(40)]
               for r in salts]
    assert answers[0] != answers[1]


def test_random_selection_only_of_items_no_profile_selected() -> None:
    engine = CustomsEngine(rules(random_selection={"rate": 1.0}))
    assert lane(engine, request([item(code="93011000")]))[1] == "H01"  # already red by its profile
    assert lane(engine, request([item()], export_country="IR"))[1] == "H02"


# --- declaration types ----------------------------------------------------------------------------------


@pytest.mark.parametrize("additional_type", ["SIMPLIFIED", "SIMPLIFIED_PRE_LODGED"])
@pytest.mark.parametrize("code", ["", "731815"])
def test_simplified_declarations_are_not_refused_for_their_commodity_code(
    additional_type: AdditionalType, code: str
) -> None:
    d = decide(CustomsEngine(rules()), request([item(code=code)], declaration_type="IMK",
                                                additional_type=additional_type))
    assert d["outcome"] == "RELEASE"


def simplified(items: list[Item], **kw: Any) -> AgencyRequest:
    return request(items, declaration_type="IMJ", additional_type="SIMPLIFIED", **kw)


def supplementary(items: list[Item], **kw: Any) -> AgencyRequest:
    return request(items, declaration_type="IMY", additional_type="SUPPLEMENTARY", **kw)


def test_simplified_without_code_is_decided_on_what_is_there() -> None:
    engine = CustomsEngine(rules(random_selection={"rate": 1.0}))
    # HS profiles cannot select an item without a code; the route profile and random selection can
    assert lane(engine, simplified([item(code="")]))[1] == "H03"
    assert lane(CustomsEngine(rules()), simplified([item(code="")], export_country="IR"))[1] == "H02"
    # a 6-digit code still matches a 4-digit profile
    assert lane(CustomsEngine(rules()), simplified([item(code="930110")]))[1] == "H01"
    # something that is not a commodity code at all is refused even there
    assert lane(CustomsEngine(rules()), simplified([item(code="73A1")]))[1] == "N01"


@pytest.mark.parametrize("additional_type", ["FRONTIER", "PRE_LODGED", "OTHER", ""])
@pytest.mark.parametrize("code", ["", "731815", "7318150", "73181500123", "7318150A"])
def test_full_declarations_need_eight_to_ten_digits(additional_type: AdditionalType, code: str) -> None:
    d = decide(CustomsEngine(rules()), request([item(code=code)], additional_type=additional_type))
    assert (d["outcome"], d["code"]) == ("REFUSE", "N01")


def test_an_amendment_may_leave_the_commodity_code_out() -> None:
    engine = CustomsEngine(rules())
    assert lane(engine, request([item(code="")], declaration_type="COR", additional_type="OTHER",
                                amendment=True))[1] == "C01"
    assert lane(engine, request([item(code="")], declaration_type="COR", additional_type="OTHER"))[1] == "N01"


def test_supplementary_declarations_are_never_held() -> None:
    engine = CustomsEngine(rules(random_selection={"rate": 1.0}))
    plain = decide(CustomsEngine(rules()), supplementary([item()]))
    assert (plain["outcome"], plain["code"]) == ("RELEASE", "C05")
    for req in (
        supplementary([item(code="93011000")]),  # red profile
        supplementary([item()], export_country="IR"),  # yellow profile
        supplementary([item()]),  # random selection
        supplementary([item(code="")]),  # no commodity code
    ):
        d = decide(engine, req)
        assert (d["outcome"], d["code"], d.get("hold_reason")) == ("RELEASE", "C03", None), d
        assert "post-clearance audit" in d["reason"]


def test_pre_lodged_is_decided_now_and_released_on_arrival() -> None:
    engine = CustomsEngine(rules())
    d = decide(engine, request([item()], declaration_type="IMD", additional_type="PRE_LODGED"))
    assert (d["outcome"], d["code"]) == ("RELEASE", "C04")
    assert "when the goods arrive" in d["reason"]
    held = decide(engine, request([item(code="93011000")], declaration_type="IMD", additional_type="PRE_LODGED"))
    assert (held["code"], held["hold_reason"]) == ("H01", "INSPECTION")
    assert "arrive" in held["reason"]
    blue = decide(engine, request([item(code="22083000")], declaration_type="IMD", additional_type="PRE_LODGED"))
    assert blue["code"] == "C03"
    assert "released on arrival" in blue["reason"]


# --- the data files -------------------------------------------------------------------------------------


def test_shipped_files_name_source_and_date_and_load() -> None:
    settings, benchmarks = customs_risk_settings(), value_benchmarks()
    assert settings.source
    assert settings.date
    assert benchmarks.source
    assert benchmarks.date
    assert settings.base_currency == benchmarks.base_currency == "GBP"
    assert 0 < settings.random_selection.rate < 0.2
    assert {"RED-ARMS", "RED-TOBACCO", "HIGH-VALUE", "UNDERVALUE"} <= {p.id for p in settings.profiles}
    assert benchmarks.for_code("73181500") is not None
    assert benchmarks.for_code("") is None


@pytest.mark.parametrize(
    "change",
    [
        {"thresholds": {"blue": 70, "yellow": 60, "red": 100}},  # out of order
        {"random_selection": {"rate": 1.5}},
        {"random_selection": {"lane": "purple"}},
        {"profiles": [{"id": "X", "why": "w", "lane": "red", "weight": 10, "hs_prefixes": ["01"]}]},
        {"profiles": [{"id": "X", "why": "w", "weight": 10}]},  # no criterion
        {"profiles": [{"id": "X", "why": "w", "lane": "yellow", "mandatory": True, "hs_prefixes": ["01"]}]},
        {"profiles": [{"id": "X", "why": "w", "weight": 10, "hs_prefix": ["01"]}]},  # misspelt criterion
        {"profiles": [{"id": "X", "why": "w", "weight": 10, "directions": ["INBOUND"]}]},
        {"profiles": [{"id": "X", "why": "w", "weight": 10, "below_benchmark": 2}]},
    ],
)
def test_bad_risk_settings_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ReferenceDataError):
        rules(**change)


def test_bad_benchmarks_are_refused() -> None:
    good = {"source": "s", "date": "d", "base_currency": "GBP",
            "benchmarks": [{"hs_prefix": "7318", "per": "kg", "unit_value": 1.5}]}
    assert parse_value_benchmarks(good).for_code("731815") is not None
    for row in ({"hs_prefix": "73a", "per": "kg", "unit_value": 1}, {"hs_prefix": "7318", "per": "litre",
                "unit_value": 1}, {"hs_prefix": "7318", "per": "kg", "unit_value": 0}):
        with pytest.raises(ReferenceDataError):
            parse_value_benchmarks({**good, "benchmarks": [row]})


def test_the_random_rate_can_be_set_for_a_deployment() -> None:
    from adapters import AgencyModes  # noqa: PLC0415
    from adapters.customs import customs_engine_with_random_rate  # noqa: PLC0415
    from adapters.errors import AdapterConfigError  # noqa: PLC0415

    assert AgencyModes.from_env({"NSW_CUSTOMS_RANDOM_RATE": "0"}).customs_random_rate == 0.0
    assert AgencyModes.from_env({}).customs_random_rate is None
    for bad in ("often", "1.5"):
        with pytest.raises(AdapterConfigError, match="NSW_CUSTOMS_RANDOM_RATE"):
            AgencyModes.from_env({"NSW_CUSTOMS_RANDOM_RATE": bad})
    assert customs_engine_with_random_rate(0.25).rules.settings.random_selection.rate == 0.25
