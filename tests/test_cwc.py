"""The CWC engine finds the chemical (CAS anywhere, CUS, name, HS) and applies the per-schedule controls."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from adapters.cwc import CWCEngine, declared_percent, load_schedules, names_of, normalise
from refdata import ReferenceDataError, cwc_controls, parse_cwc_controls
from routing import load_rules, route
from schemas import AgencyRequest, Item, ItemDecision, Submission
from schemas._records import Statement

TODAY = date(2026, 12, 1)  # rule set 2026.2
SARIN, TEA, THIODIGLYCOL, DMMP = "107-44-8", "102-71-6", "111-48-8", "756-79-6"


def item(seq: int, code: str, description: str = "goods", *, cas: list[str] | None = None,
         docs: list[str] | None = None, origin: str | None = "DE", net_mass_kg: float | None = None,
         statements: list[Statement] | None = None, cus: str | None = None) -> Item:
    return {"sequence": seq, "description": description, "commodity_code": code, "origin_country": origin,
            "cas_numbers": cas or [], "documents": [{"category_code": c[0], "type_code": c[1:], "id": None}
                                                    for c in docs or []],
            "quantity": None, "quantity_unit": None, "net_mass_kg": net_mass_kg, "value": 100.0, "currency": "GBP",
            "cus_code": cus, "statements": statements or []}


def request(items: list[Item], *, declaration_type: str = "IMZ", partner: str = "DE") -> AgencyRequest:
    exporting = declaration_type.startswith("EX")
    return {"request_id": "sub-1:1:cwc", "submission_id": "sub-1", "version": 1, "agency": "cwc",
            "requested_at": 0, "trader_reference": "LRN-1", "declaration_type": declaration_type,
            "declarant_id": "GB1", "parties": [], "authorisations": [],
            "export_country": "GB" if exporting else partner, "destination_country": partner if exporting else "GB",
            "items": items, "reasons": []}


def decide(engine: CWCEngine, req: AgencyRequest) -> ItemDecision:
    [decision] = engine.decide(req, today=TODAY)
    return decision


def outcome(req: AgencyRequest, engine: CWCEngine | None = None) -> tuple[str, str]:
    d = decide(engine or CWCEngine(), req)
    return d["outcome"], d["code"]


# --- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("TABUN, 2 l", "1.A.2"),
        ("Sarin", "1.A.1"),
        ("bis(2-chloroethyl) sulphide".replace("sulphide", "sulfide"), "1.A.4"),
        ("Bis (2-Chloroethyl)Sulfide technical grade", "1.A.4"),
        ("sulfur mustard", "1.A.4"),  # family label, singular
        ("Lewisite", "1.A.5"),
        ("O-ISOPROPYL METHYLPHOSPHONOFLUORIDATE", "1.A.1"),
        ("methyl phosphonyl dichloride", "2.B.4"),  # spacing inside the name
        ("benzilic acid 25 kg", "2.B.8"),  # synonym in parentheses in the schedules
        ("Thiodiglycol", "2.B.13"),
        ("phosgène", "3.A.1"),  # accents
        ("Triethanolamine 99 %", "3.B.17"),
        ("1,10-Bis[N-(3-dimethylcarbamoxy-\N{GREEK SMALL LETTER ALPHA}-picolyl)-N-ethyl-N-methylammonio]decane-"
         "2,9-dione dibromide", "1.A.16"),  # Greek letter written as a letter where the schedules spell it out
        ("VX", "1.A.3"),
    ],
)
def test_names_are_found_normalised(text: str, entry: str) -> None:
    found = load_schedules().names.find(text, commodity_code="29319000")
    assert [chem.entry for _, chem in found][:1] == [entry]


@pytest.mark.parametrize(
    "text",
    ["stabunx pellets", "Sarinda cotton shirts", "ricinoleic acid", "vx series cable", "phosgenes?"[:-1] + "x",
     "steel screws", "mustard seeds"],
)
def test_names_are_whole_words_and_codes_as_written(text: str) -> None:
    assert load_schedules().names.find(text, commodity_code="29319000") == []


def test_two_letter_codes_only_on_chemicals() -> None:
    names = load_schedules().names
    assert [c.entry for _, c in names.find("BZ", commodity_code="29339980")] == ["2.A.3"]
    assert names.find("BZ 100 ceiling lamp", commodity_code="94051100") == []


def test_names_of_a_schedules_row() -> None:
    assert names_of("Sulfur mustards: Mustard gas: Bis(2-chloroethyl)sulfide") == [
        "Sulfur mustards", "Mustard gas", "Bis(2-chloroethyl)sulfide"]
    assert names_of("BZ: 3-Quinuclidinyl benzilate (*) [special thresholds, Part VII VA]") == [
        "BZ", "3-Quinuclidinyl benzilate"]
    assert names_of("EXEMPT from 2.B.4 - Fonofos: O-Ethyl S-phenyl ethylphosphonothiolothionate")[0] == "Fonofos"
    assert normalise("N,N-Di\N{LATIN SMALL LETTER E WITH ACUTE}thyl-\N{GREEK SMALL LETTER BETA}") == "n n diethyl beta"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [(["30 % solution"], 30.0), (["aqueous solution 12,5% w/w"], 12.5), (["5 per cent by weight"], 5.0),
     (["1% in water", "purity 99.5 %"], 99.5), (["concentration: 8 %"], 8.0), (["no concentration"], None),
     (["150 % solution"], None), (["ISO 9001"], None), (["thiodiglycol, contains 5 % water"], None),
     (["discount 5 %"], None), (["triethanolamine 85 %"], None)],
)
def test_declared_percent(texts: list[str], expected: float | None) -> None:
    assert declared_percent(texts) == expected


# --- finding the chemical in every field ---------------------------------------------------------------


def test_schedule_1_by_name_under_a_residual_code_is_refused() -> None:
    # The case: sarin declared by name under a residual code, released green before.
    assert outcome(request([item(1, "29319000", "Sarin, 1 kg")])) == ("REFUSE", "N02")


def test_cas_in_additional_information_is_used() -> None:
    stated = item(1, "29319000", "organophosphorus compound", statements=[{"code": "00500", "text": SARIN}])
    # schemas map statements' CAS numbers into cas_numbers; the engine reads them from there
    stated["cas_numbers"] = [SARIN]
    assert outcome(request([stated])) == ("REFUSE", "N02")


def test_name_in_a_statement_is_used() -> None:
    stated = item(1, "29309098", "chemical", statements=[{"code": "00500", "text": "thiodiglycol 98 %"}])
    assert outcome(request([stated], partner="EG")) == ("REFUSE", "N03")


def test_strictest_of_cas_name_and_hs_wins() -> None:
    mixed = item(1, "29221500", "triethanolamine with sarin", cas=[TEA])
    assert outcome(request([mixed])) == ("REFUSE", "N02")


def test_specific_hs_alone_finds_residual_hs_alone_does_not() -> None:
    assert outcome(request([item(1, "29221500")], declaration_type="EXA", partner="EG")) == ("HOLD", "H01")
    basket = decide(CWCEngine(), request([item(1, "28121900")], partner="EG"))
    assert (basket["outcome"], basket["code"]) == ("RELEASE", "C04")
    assert "basket" in basket["reason"]
    named = item(1, "28121900", "arsenic trichloride")
    assert outcome(request([named], partner="EG")) == ("REFUSE", "N03")


def test_cus_code_through_the_controls_table() -> None:
    assert cwc_controls().cus_to_cas == {}  # no CUS-to-CAS mapping in the shared data: the table ships empty
    controls = dataclasses.replace(cwc_controls(), cus_to_cas={"0012345-6": THIODIGLYCOL})
    by_cus = item(1, "29309098", "chemical", cus="0012345-6")
    d = decide(CWCEngine(controls=controls), request([by_cus], partner="EG"))
    assert (d["code"], "CUS 0012345-6" in d["reason"]) == ("N03", True)
    assert outcome(request([by_cus], partner="EG")) == ("RELEASE", "C04")


def test_exempt_by_name() -> None:
    assert outcome(request([item(1, "29221990", "N,N-dimethylaminoethanol")], partner="EG")) == ("RELEASE", "C05")


# --- mixtures, quantities, documents from the controls -------------------------------------------------


def test_schedule_2_mixtures_with_non_party_by_part() -> None:
    def s2(text: str, code: str = "29309098") -> tuple[str, str]:
        return outcome(request([item(1, code, text)], partner="EG"))

    assert s2("thiodiglycol 10 % solution") == ("RELEASE", "C06")  # 2B: up to 10 %
    assert s2("thiodiglycol 10.5 % solution") == ("REFUSE", "N03")
    assert s2("thiodiglycol") == ("REFUSE", "N03")  # no concentration stated: the chemical itself
    assert s2("thiodiglycol, contains 5 % water") == ("REFUSE", "N03")  # not a concentration of the chemical
    assert s2("amiton 1 % in solvent", "29309098") == ("RELEASE", "C06")  # 2A: up to 1 %
    assert s2("amiton 2 % in solvent", "29309098") == ("REFUSE", "N03")


def test_schedule_3_mixture_export_to_non_party() -> None:
    def export(text: str, docs: list[str] | None = None) -> tuple[str, str]:
        return outcome(request([item(1, "29221500", text, docs=docs)], declaration_type="EXA", partner="EG"))

    assert export("triethanolamine 30 % solution") == ("RELEASE", "C07")
    assert export("triethanolamine 85 % w/w") == ("HOLD", "H01")
    assert export("triethanolamine", ["C691"]) == ("RELEASE", "C03")


def test_schedule_1_has_no_mixture_exemption_and_a_quantity_limit() -> None:
    def licensed(text: str, kg: float | None = None) -> Item:
        return item(1, "29319000", text, docs=["C690"], origin="FR", net_mass_kg=kg)

    assert outcome(request([licensed("sarin 0.5 % reference standard")], partner="FR")) == ("RELEASE", "C01")
    assert outcome(request([item(1, "29319000", "sarin 0.5 %", origin="FR")], partner="FR")) == ("REFUSE", "N02")
    assert outcome(request([licensed("sarin", 1200.0)], partner="FR")) == ("REFUSE", "N04")
    # 1200 kg of a 50 % mixture is 600 kg of the chemical: within the tonne
    assert outcome(request([licensed("sarin 50 % solution", 1200.0)], partner="FR")) == ("RELEASE", "C01")
    saxitoxin = decide(CWCEngine(), request([licensed("saxitoxin", 0.000002)], partner="FR"))
    assert saxitoxin["code"] == "C01"
    assert "5bis" in saxitoxin["reason"]


def test_document_codes_are_configured_per_schedule() -> None:
    controls = dataclasses.replace(cwc_controls(), licence={1: frozenset({"X002"})},
                                   end_use_certificate={3: frozenset({"9999"})})
    engine = CWCEngine(controls=controls)
    assert outcome(request([item(1, "29319000", "sarin", docs=["X002"])], partner="FR"), engine) == ("RELEASE", "C01")
    assert outcome(request([item(1, "29319000", "sarin", docs=["C690"])], partner="FR"), engine) == ("REFUSE", "N02")
    eu = request([item(1, "29221500", "triethanolamine", docs=["9999"])], declaration_type="EXA", partner="EG")
    assert outcome(eu, engine) == ("RELEASE", "C03")


def test_controls_file_is_checked() -> None:
    good: dict[str, Any] = {"date": "2026-12-01", "documents": {"1": {"licence": ["C690"]}},
                            "mixtures": {"2A": {"max_percent": 1}}, "cus_codes": {"map": {}},
                            "schedule_1_quantity": {"max_kg_per_declaration": 1000}}
    assert parse_cwc_controls(good).mixture_max_percent == {"2A": 1.0}
    bad_ones = ({**good, "mixtures": {"2C": {"max_percent": 1}}}, {**good, "mixtures": {"2A": {"max_percent": 101}}},
                {**good, "documents": {"1": {"licence": ["C69"]}}}, {k: v for k, v in good.items() if k != "cus_codes"})
    for bad in bad_ones:
        with pytest.raises(ReferenceDataError):
            parse_cwc_controls(bad)


# --- routing sends these items to CWC ------------------------------------------------------------------


def submission(items: list[Item]) -> Submission:
    return {"submission_id": "s", "version": 1, "kind": "DECLARATION", "received_at": 0, "bundle": "nsw",
            "function_code": "9", "trader_reference": "LRN", "declaration_type": "IMZ", "declarant_id": "GB1",
            "parties": [], "authorisations": [], "export_country": "DE", "destination_country": "GB",
            "items": items, "direction": "IMPORT", "additional_type": "FRONTIER", "statements": []}


def test_routing_by_cus_code_when_the_table_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import refdata  # noqa: PLC0415 - patched for this test only

    sub = submission([item(1, "29309098", "chemical", cus="0012345-6")])
    assert "cwc" not in route(sub, load_rules(on=TODAY))  # the shipped table is empty
    filled = dataclasses.replace(cwc_controls(), cus_to_cas={"0012345-6": THIODIGLYCOL})
    monkeypatch.setattr("routing._rules.cwc_controls", lambda: filled)
    routes = route(sub, load_rules(on=TODAY))
    assert [(r["item"], r["rule"]) for r in routes["cwc"]] == [(1, "CWC-CUS")]
    assert "0012345-6" in routes["cwc"][0]["why"]
    assert refdata.cwc_controls().cus_to_cas == {}


def test_routing_by_name_in_description_and_statements_not_by_basket_alone() -> None:
    table = load_rules(on=TODAY)
    sub = submission([item(1, "29319000", "Sarin 1 kg"), item(2, "28121900", "chlorides"),
                      item(3, "29309098", "chemical", statements=[{"code": "00500", "text": "Thiodiglycol"}]),
                      item(4, "73181500", "stabun screws")])
    routes = route(sub, table)
    assert [(r["item"], r["rule"]) for r in routes["cwc"]] == [(1, "CWC-NAME"), (3, "CWC-NAME")]
    assert "Sarin" in routes["cwc"][0]["why"]
