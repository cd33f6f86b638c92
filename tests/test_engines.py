"""The agencies' reference decision engines, their reference data, and routing + engines together."""

from __future__ import annotations

from datetime import date

import pytest

import adapters
from adapters import ENGINES, DecisionEngine
from adapters import decision as item_decision
from adapters.customs import CustomsEngine
from adapters.cwc import CWCEngine, load_schedules, states_not_party
from adapters.ipr import IPREngine, add_working_days, load_register
from refdata import agency_specs
from routing import load_rules, route
from schemas import AgencyRequest, Authorisation, Document, Item, ItemDecision, Submission

TODAY = date(2026, 11, 26)  # a Thursday
RULES_ON = date(2026, 12, 1)  # rule set 2026.2: SPS concerns, direction and additional type
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


def request(
    agency: str,
    items: list[Item],
    *,
    declaration_type: str = "IMZ",
    declarant: str = OTHER_DECLARANT,
    export_country: str | None = "CN",
    destination_country: str | None = "GB",
    authorisations: list[Authorisation] | None = None,
) -> AgencyRequest:
    return {
        "request_id": f"sub-1:1:{agency}",
        "submission_id": "sub-1",
        "version": 1,
        "agency": agency,
        "requested_at": 0,
        "trader_reference": "LRN-1",
        "declaration_type": declaration_type,
        "declarant_id": declarant,
        "parties": [],
        "authorisations": authorisations or [],
        "export_country": export_country,
        "destination_country": destination_country,
        "items": items,
        "reasons": [],
    }


def codes(decisions: list[ItemDecision]) -> list[tuple[int, str, str]]:
    return [(d["sequence"], d["outcome"], d["code"]) for d in decisions]


def one(engine: DecisionEngine, req: AgencyRequest) -> ItemDecision:
    decisions = engine.decide(req, today=TODAY)
    assert len(decisions) == 1
    return decisions[0]


# --- the engine registry -------------------------------------------------------------------------------


def test_engines_registry_follows_the_protocol() -> None:
    assert list(ENGINES) == [spec.name for spec in agency_specs() if spec.engine is not None]  # as configured
    for name, engine in ENGINES.items():
        assert isinstance(engine, DecisionEngine)
        assert engine.agency == name


def test_engines_answer_every_item_in_request_order() -> None:
    items = [item(3, "06031100", docs=["N851"]), item(1, "0603"), item(2, "73181500")]
    for engine in adapters.ENGINES.values():
        assert [d["sequence"] for d in engine.decide(request(engine.agency, items), today=TODAY)] == [3, 1, 2]


# --- customs --------------------------------------------------------------------------------------------

AEO: list[Authorisation] = [{"category_code": "AEOC", "holder_id": AEO_DECLARANT}]


def test_customs_green_and_aeo_green() -> None:
    customs = CustomsEngine()
    assert one(customs, request("customs", [item(1, "73181500")]))["code"] == "C01"
    aeo = request("customs", [item(1, "73181500")], declarant=AEO_DECLARANT, authorisations=AEO)
    assert one(customs, aeo)["code"] == "C02"
    anonymous_holder = request(
        "customs", [item(1, "73181500")], authorisations=[{"category_code": "AEOS", "holder_id": None}]
    )
    assert one(customs, anonymous_holder)["code"] == "C02"


@pytest.mark.parametrize(
    "code", ["7318150", "73181500123", "7318150A", "", "\uff17\uff13\uff11\uff18\uff11\uff15\uff10\uff10"]
)
def test_customs_refuses_malformed_commodity_codes(code: str) -> None:
    decision = one(CustomsEngine(), request("customs", [item(1, code)]))
    assert (decision["outcome"], decision["code"]) == ("REFUSE", "N01")


def test_customs_accepts_ten_digit_codes() -> None:
    assert one(CustomsEngine(), request("customs", [item(1, "7318150090")]))["outcome"] == "RELEASE"


def test_customs_red_even_for_aeo() -> None:
    req = request("customs", [item(1, "24022090")], declarant=AEO_DECLARANT, authorisations=AEO)
    decision = one(CustomsEngine(), req)
    assert (decision["outcome"], decision["code"]) == ("HOLD", "H01")
    assert "RED-TOBACCO" in decision["reason"]


def test_customs_yellow_above_the_base_currency_threshold_unless_aeo() -> None:
    # HIGH-VALUE in refdata/customs-risk-profiles.json: 100,000 GBP or more (profiles: tests/test_customs_engine.py)
    customs = CustomsEngine()
    costly = [item(1, "73181500", value=100_000.0)]
    assert codes(customs.decide(request("customs", costly), today=TODAY)) == [(1, "HOLD", "H02")]
    below = [item(1, "73181500", value=99_999.99)]
    assert codes(customs.decide(request("customs", below), today=TODAY)) == [(1, "RELEASE", "C01")]
    someone_elses_aeo: list[Authorisation] = [{"category_code": "AEOC", "holder_id": "GB000000000001"}]
    assert one(customs, request("customs", costly, authorisations=someone_elses_aeo))["code"] == "H02"
    assert (
        one(customs, request("customs", costly, declarant=AEO_DECLARANT, authorisations=AEO))["code"] == "C02"
    )


# --- SPS: see tests/test_engines_sps.py (the requirement table, concern by concern) -------------------


# --- CWC --------------------------------------------------------------------------------------------------

SARIN, THIODIGLYCOL, TEA, DMAE = "107-44-8", "111-48-8", "102-71-6", "108-01-0"


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (
            request("cwc", [item(1, "29221500", cas=[TEA], origin="DE")], export_country="DE"),
            ("RELEASE", "C03"),
        ),
        (request("cwc", [item(1, "29221500", origin="DE")], export_country="DE"), ("RELEASE", "C03")),
        (request("cwc", [item(1, "29221500", cas=[TEA])], export_country="EG"), ("RELEASE", "C03")),
        (request("cwc", [item(1, "29309098", cas=[THIODIGLYCOL])], export_country="EG"), ("REFUSE", "N03")),
        (request("cwc", [item(1, "29309098", cas=[THIODIGLYCOL])], export_country="DE"), ("RELEASE", "C02")),
        (
            request("cwc", [item(1, "29319000", cas=[SARIN], docs=["C690"])], export_country="FR"),
            ("RELEASE", "C01"),
        ),
        (request("cwc", [item(1, "29319000", cas=[SARIN])], export_country="FR"), ("REFUSE", "N02")),
        (
            request("cwc", [item(1, "29319000", cas=[SARIN], docs=["C690"])], export_country="IL"),
            ("REFUSE", "N01"),
        ),
        (request("cwc", [item(1, "29221990", cas=[DMAE])], export_country="EG"), ("RELEASE", "C05")),
        (request("cwc", [item(1, "28121900")], export_country="DE"), ("RELEASE", "C04")),
        (request("cwc", [item(1, "28121900", cas=["7647-01-0"])], export_country="DE"), ("RELEASE", "C04")),
        (request("cwc", [item(1, "73181500")], export_country="EG"), ("RELEASE", "C04")),
    ],
    ids=[
        "s3-by-cas",
        "s3-by-hs",
        "s3-import-from-non-party",
        "s2-non-party",
        "s2-party",
        "s1-licensed",
        "s1-no-licence",
        "s1-non-party",
        "exempt",
        "basket-hs-no-cas",
        "basket-hs-other-cas",
        "not-scheduled",
    ],
)
def test_cwc_decisions(req: AgencyRequest, expected: tuple[str, str]) -> None:
    decision = one(CWCEngine(), req)
    assert (decision["outcome"], decision["code"]) == expected


def test_cwc_schedule_3_export_to_non_party_needs_end_use_certificate() -> None:
    def export(docs: list[str]) -> AgencyRequest:
        return request(
            "cwc",
            [item(1, "29221500", cas=[TEA], origin="GB", docs=docs)],
            declaration_type="EXA",
            export_country="GB",
            destination_country="KP",
        )

    held = one(CWCEngine(), export([]))
    assert (held["outcome"], held["code"]) == ("HOLD", "H01")
    assert "KP" in held["reason"]
    assert one(CWCEngine(), export(["C691"]))["code"] == "C03"


def test_cwc_partner_falls_back_to_origin_and_holds_when_unknown() -> None:
    from_origin = request("cwc", [item(1, "29309098", cas=[THIODIGLYCOL], origin="EG")], export_country=None)
    assert one(CWCEngine(), from_origin)["code"] == "N03"
    unknown = request("cwc", [item(1, "29309098", cas=[THIODIGLYCOL], origin=None)], export_country=None)
    assert one(CWCEngine(), unknown)["code"] == "H02"


def test_cwc_strictest_schedule_wins_and_states_are_configurable() -> None:
    req = request("cwc", [item(1, "29319000", cas=[TEA, SARIN])], export_country="DE")
    assert one(CWCEngine(), req)["code"] == "N02"  # Schedule 1 without licence, not Schedule 3
    thiodiglycol = request("cwc", [item(1, "29309098", cas=[THIODIGLYCOL])], export_country="EG")
    assert one(CWCEngine(not_party=frozenset({"KP"})), thiodiglycol)["code"] == "C02"


# --- IPR --------------------------------------------------------------------------------------------------


def test_working_days_skip_weekends() -> None:
    assert add_working_days(date(2026, 11, 27), 1) == date(2026, 11, 30)  # Friday -> Monday
    assert add_working_days(date(2026, 11, 28), 1) == date(2026, 11, 30)  # Saturday -> Monday
    assert add_working_days(TODAY, 10) == date(2026, 12, 10)  # Thursday + two weekends
    assert add_working_days(date(2026, 11, 29), 0) == date(2026, 11, 29)
    with pytest.raises(ValueError, match="negative"):
        add_working_days(TODAY, -1)


def test_ipr_suspends_branded_goods_with_holder_and_deadline() -> None:
    decision = one(
        IPREngine(), request("ipr", [item(1, "91021100", "ZENTRA quartz wristwatches", origin="HK")])
    )
    assert (decision["outcome"], decision["code"]) == ("HOLD", "H01")
    assert "Zentra Horology SA" in decision["reason"]
    assert "2026-12-10" in decision["reason"]
    assert "extendable once by 10 working days to 2026-12-24" in decision["reason"]
    assert (decision["hold_reason"], decision["valid_until"]) == ("IPR_SUSPENSION", "2026-12-10")


def test_decisions_speak_one_vocabulary() -> None:
    """A hold says why in the shared vocabulary; a release or refusal has no hold reason."""
    assert item_decision(1, "HOLD", "H09", "x", hold_reason="INSPECTION")["hold_reason"] == "INSPECTION"
    assert item_decision(1, "RELEASE", "C09", "x", valid_until=date(2027, 1, 31))["valid_until"] == "2027-01-31"
    with pytest.raises(ValueError, match="hold reason"):
        item_decision(1, "HOLD", "H09", "x")
    with pytest.raises(ValueError, match="hold reason"):
        item_decision(1, "REFUSE", "N09", "x", hold_reason="OTHER")


def test_ipr_releases_goods_of_the_right_holder() -> None:
    req = request("ipr", [item(1, "91021100", "Zentra watches")], declarant="CH-ZEN-0001")
    assert one(IPREngine(), req)["code"] == "C03"


def test_ipr_releases_when_right_not_in_force() -> None:
    handbags = request("ipr", [item(1, "42022100", "OSPRELLA leather handbags")])
    assert one(IPREngine(), handbags)["code"] == "C02"  # recorded until 2024-12-31
    assert IPREngine().decide(handbags, today=date(2024, 12, 31))[0]["code"] == "H01"
    watches = request("ipr", [item(1, "91021100", "ZENTRA watches")])
    assert IPREngine().decide(watches, today=date(2031, 1, 1))[0]["code"] == "C02"


def test_ipr_releases_without_brand_or_outside_the_right_s_chapters() -> None:
    req = request("ipr", [item(1, "91021100", "Quartz wristwatches"), item(2, "61091000", "ZENTRA T-shirts")])
    assert codes(IPREngine().decide(req, today=TODAY)) == [(1, "RELEASE", "C01"), (2, "RELEASE", "C01")]


# --- reference data -----------------------------------------------------------------------------------


def test_register_holds_zentra() -> None:
    zentra = next(r for r in load_register() if r.brand == "ZENTRA")
    assert (zentra.holder_name, zentra.holder_id) == ("Zentra Horology SA", "CH-ZEN-0001")
    assert zentra.hs_chapters == frozenset({"91"})
    assert zentra.nice_classes == (14,)
    assert zentra.in_force(date(2030, 12, 31))
    assert len(load_register()) >= 6


def test_schedules_and_states_not_party() -> None:
    schedules = load_schedules()
    assert schedules.by_cas[TEA].schedule == 3
    assert schedules.by_cas[THIODIGLYCOL].schedule == 2
    assert schedules.by_cas[SARIN].schedule == 1
    assert DMAE not in schedules.scheduled_cas
    assert "281219" in schedules.residual_hs
    assert {"EG", "IL", "KP"} <= states_not_party()
    assert "DE" not in states_not_party()


# --- routing and engines together: the all-agencies sample ------------------------------------------------


def test_all_agencies_sample_end_to_end() -> None:
    sub: Submission = {
        "submission_id": "sub-1",
        "version": 1,
        "kind": "DECLARATION",
        "received_at": 0,
        "bundle": "",
        "function_code": "9",
        "trader_reference": "LRN-ALL",
        "declaration_type": "IMA",  # a frontier import: a supplementary one (IMZ) is not re-controlled
        "declarant_id": OTHER_DECLARANT,
        "parties": [],
        "authorisations": [],
        "export_country": "EG",
        "destination_country": "GB",
        "items": [
            item(1, "73181500", "Steel screws", origin="EG"),
            item(2, "06031100", "Cut roses", origin="EG"),
            item(3, "29309098", "Thiodiglycol", origin="EG", cas=[THIODIGLYCOL]),
            item(4, "91021100", "ZENTRA chronograph watches", origin="EG"),
        ],
    }
    by_seq = {i["sequence"]: i for i in sub["items"]}
    outcomes: dict[str, list[tuple[int, str, str]]] = {}
    for agency, reasons in route(sub, load_rules(on=RULES_ON)).items():
        req = request(agency, [by_seq[r["item"]] for r in reasons], export_country="EG", declaration_type="IMA")
        outcomes[agency] = codes(ENGINES[agency].decide(req, today=TODAY))
    assert outcomes == {
        "customs": [
            (1, "RELEASE", "C01"),
            (2, "RELEASE", "C01"),
            (3, "RELEASE", "C01"),
            (4, "RELEASE", "C01"),
        ],
        "sps": [(2, "HOLD", "H01")],
        "cwc": [(3, "REFUSE", "N03")],
        "ipr": [(4, "HOLD", "H01")],
    }
