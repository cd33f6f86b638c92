"""The SPS engine against its requirement table: each concern, exemptions, references, direction, inspection."""

from __future__ import annotations

from datetime import date

import pytest

from adapters.sps import SPSEngine, selected
from refdata import sps_requirements
from schemas import AgencyRequest, Document, Item, ItemDecision

TODAY = date(2026, 12, 1)
CHED = "GBCHD2024.1234567"


def doc(code: str, reference: str | None = "REF-1", status: str | None = None) -> Document:
    return {"category_code": code[0], "type_code": code[1:], "id": reference, "status": status}


def item(seq: int, code: str, *, origin: str | None = "CN", docs: list[Document] | None = None) -> Item:
    return {"sequence": seq, "description": "goods", "commodity_code": code, "origin_country": origin,
            "cas_numbers": [], "documents": docs or [], "quantity": None, "quantity_unit": None,
            "net_mass_kg": None, "value": 1000.0, "currency": "GBP"}


def request(items: list[Item], *, declaration_type: str = "IMA", export_country: str | None = "CN",
            submission_id: str = "sub-1") -> AgencyRequest:
    return {"request_id": f"{submission_id}:1:sps", "submission_id": submission_id, "version": 1, "agency": "sps",
            "requested_at": 0, "trader_reference": "LRN-1", "declaration_type": declaration_type,
            "declarant_id": "GB987654321000", "parties": [], "authorisations": [], "export_country": export_country,
            "destination_country": "GB", "items": items, "reasons": []}


def decide(items: list[Item], *, inspections: bool = False, **kwargs: str | None) -> list[ItemDecision]:
    return SPSEngine(inspections=inspections).decide(request(items, **kwargs), today=TODAY)  # type: ignore[arg-type]


def codes(decisions: list[ItemDecision]) -> list[tuple[int, str, str]]:
    return [(d["sequence"], d["outcome"], d["code"]) for d in decisions]


# --- plant health -----------------------------------------------------------------------------------------


def test_plant_health_needs_the_phytosanitary_certificate() -> None:
    decisions = decide([item(1, "06029050", origin="NL", docs=[doc("N851", "NL-PC-2024-0871345")]),
                        item(2, "06031100", origin="KE"), item(3, "44071100", origin="US")])
    assert codes(decisions) == [(1, "RELEASE", "C01"), (2, "HOLD", "H01"), (3, "HOLD", "H01")]
    assert decisions[1]["hold_reason"] == "DOCUMENTS_REQUIRED"
    assert "N851" in decisions[1]["reason"]
    assert "plant health" in decisions[1]["reason"]


@pytest.mark.parametrize(("code", "fruit"), [("08039010", "bananas"), ("08043000", "pineapples"),
                                             ("08011100", "coconuts"), ("08106000", "durians"),
                                             ("08041000", "dates")])
def test_exempt_fruit_needs_no_phytosanitary_certificate(code: str, fruit: str) -> None:
    assert codes(decide([item(1, code, origin="CO")])) == [(1, "RELEASE", "C03")], fruit


def test_other_fresh_fruit_is_not_exempt() -> None:
    assert codes(decide([item(1, "08081080", origin="ZA")])) == [(1, "HOLD", "H01")]  # apples


def test_wood_accepts_the_quarantine_release_certificate_9115() -> None:
    assert codes(decide([item(1, "44039100", origin="US", docs=[doc("9115", "GBQRC12345")])])) == [
        (1, "RELEASE", "C01")]


def test_grain_needs_a_certificate_only_from_karnal_bunt_countries() -> None:
    assert codes(decide([item(1, "10019900", origin="IN"), item(2, "10019900", origin="FR")])) == [
        (1, "HOLD", "H01"), (2, "RELEASE", "C03")]


# --- animal health ----------------------------------------------------------------------------------------


def test_live_animals_need_the_ched_a_not_the_ched_p() -> None:
    decisions = decide([item(1, "01012100", origin="US", docs=[doc("C640", CHED)]),
                        item(2, "01012100", origin="US", docs=[doc("N853", CHED)])])
    assert codes(decisions) == [(1, "RELEASE", "C01"), (2, "HOLD", "H01")]
    assert "C640" in decisions[1]["reason"]


def test_live_animals_are_always_inspected() -> None:
    decisions = decide([item(1, "01012100", origin="US", docs=[doc("C640", CHED)])], inspections=True)
    assert codes(decisions) == [(1, "HOLD", "H02")]
    assert decisions[0]["hold_reason"] == "INSPECTION"


def test_products_of_animal_origin_need_the_ched_p() -> None:
    decisions = decide([item(1, "02071290", origin="AR", docs=[doc("N853", CHED)]),
                        item(2, "02071290", origin="AR", docs=[doc("N851", "X-1")])])
    assert codes(decisions) == [(1, "RELEASE", "C01"), (2, "HOLD", "H01")]


# --- food safety (high-risk food not of animal origin) ----------------------------------------------------


def test_high_risk_food_needs_the_ched_d_from_listed_origins_only() -> None:
    decisions = decide([item(1, "08022200", origin="TR"), item(2, "08022200", origin="TR", docs=[doc("C678", CHED)]),
                        item(3, "08022200", origin="IT")])
    assert codes(decisions) == [(1, "HOLD", "H01"), (2, "RELEASE", "C01"), (3, "RELEASE", "C03")]
    assert "food safety" in decisions[0]["reason"]
    assert "C678" in decisions[0]["reason"]


@pytest.mark.parametrize("code", ["22042100", "22030001", "22083000", "20091100", "18040000", "13022010",
                                  "24031990", "19059030"])
def test_wine_beer_spirits_juice_cocoa_butter_pectin_tobacco_bread_need_no_sps_document(code: str) -> None:
    assert codes(decide([item(1, code, origin="TN", docs=[doc("C678", CHED)])])) == [(1, "RELEASE", "C03")]


# --- exemptions, waivers, statuses --------------------------------------------------------------------------


@pytest.mark.parametrize("y_code", ["Y978", "Y979"])
def test_y_code_exemptions_are_honoured(y_code: str) -> None:
    decisions = decide([item(1, "08022200", origin="GE", docs=[doc(y_code, None)]),
                        item(2, "07019010", origin="EG", docs=[doc(y_code, None)])])
    assert codes(decisions) == [(1, "RELEASE", "C02"), (2, "RELEASE", "C02")]
    assert y_code in decisions[0]["reason"]


def test_a_y_code_does_not_exempt_live_animals() -> None:
    assert codes(decide([item(1, "01012100", origin="US", docs=[doc("Y979", None)])])) == [(1, "HOLD", "H01")]


def test_waiver_status_is_honoured_and_unavailable_document_is_missing() -> None:
    decisions = decide([item(1, "02013000", origin="GB", docs=[doc("N853", "GBCHD2026.NIRMS", "XW")]),
                        item(2, "02013000", origin="AR", docs=[doc("N853", CHED, "UA")])])
    assert codes(decisions) == [(1, "RELEASE", "C02"), (2, "HOLD", "H01")]
    assert "unavailable" in decisions[1]["reason"]


# --- reference formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["GBCHD2024.1234567", "GBCHD20211234567", "GBCHD2024.1234567V",
                                       "CHEDP.GB.2024.1234567", "GBCVD2021.1396392"])
def test_ched_references_in_a_recognised_form(reference: str) -> None:
    assert codes(decide([item(1, "02013000", origin="AR", docs=[doc("N853", reference)])])) == [
        (1, "RELEASE", "C01")]


@pytest.mark.parametrize("reference", ["GBCHD2024.", "GBCHD12345", "GBCHD-202305-1234567", "GBCHD2024-1234598",
                                       "GBCHD202101234567", None])
def test_malformed_ched_reference_is_held(reference: str | None) -> None:
    decisions = decide([item(1, "02013000", origin="AR", docs=[doc("N853", reference)])])
    assert codes(decisions) == [(1, "HOLD", "H03")]
    assert decisions[0]["hold_reason"] == "DOCUMENTS_REQUIRED"


# --- direction and declaration type ------------------------------------------------------------------------


def test_export_of_plants_needs_the_hub_countrys_export_certificate() -> None:
    decisions = decide([item(1, "06029050", origin="GB", docs=[doc("N851", "UK/GB/E&W/2026/123456")]),
                        item(2, "06029050", origin="GB", docs=[doc("N851", CHED)]),
                        item(3, "06029050", origin="GB", docs=[doc("C640", CHED)]),
                        item(4, "02013000", origin="GB")], declaration_type="EXA", export_country="GB")
    assert codes(decisions) == [(1, "RELEASE", "C01"), (2, "HOLD", "H03"), (3, "HOLD", "H01"),
                                (4, "RELEASE", "C03")]
    assert "export" in decisions[1]["reason"]


def test_supplementary_declaration_is_not_re_controlled() -> None:
    assert codes(decide([item(1, "06031100", origin="KE")], declaration_type="IMZ")) == [(1, "RELEASE", "C04")]


def test_movement_dispatched_from_the_hub_country_is_not_an_import_requirement() -> None:
    assert codes(decide([item(1, "07070005", origin="GB")], export_country="GB")) == [(1, "RELEASE", "C03")]


# --- inspection: deterministic, at the table's rate -------------------------------------------------------


def test_selection_is_deterministic_and_near_the_rate() -> None:
    keys = [f"sub-{n}:1:1:AH-ANIMAL-PRODUCTS" for n in range(4000)]
    first = [selected(k, 0.15) for k in keys]
    assert first == [selected(k, 0.15) for k in keys]
    assert 0.12 < sum(first) / len(keys) < 0.18
    assert not any(selected(k, 0.0) for k in keys)
    assert all(selected(k, 1.0) for k in keys)


def test_inspection_follows_submission_version_and_item() -> None:
    engine = SPSEngine()
    chicken = [item(1, "02071290", origin="AR", docs=[doc("N853", CHED)])]
    outcomes = {sid: engine.decide(request(chicken, submission_id=sid), today=TODAY)[0]["code"]
                for sid in (f"sub-{n}" for n in range(60))}
    assert set(outcomes.values()) == {"C01", "H02"}  # 15%: some of 60 submissions selected, not all
    again = {sid: engine.decide(request(chicken, submission_id=sid), today=TODAY)[0]["code"] for sid in outcomes}
    assert again == outcomes


def test_the_table_names_its_source_and_every_concern() -> None:
    table = sps_requirements()
    assert table.source
    assert table.date
    assert {r.concern for r in table.requirements} == {"animal_health", "plant_health", "food_safety"}
    assert {d for r in table.requirements for d in r.documents} >= {"N851", "N853", "C640", "C678", "9115"}
