"""Agencies as configuration (refdata/agencies.json): a CITES authority and strategic export control take part
with the generic requirements engine and their rules, no code of their own."""

from __future__ import annotations

from datetime import date

import pytest

from adapters import ENGINES
from refdata import agency_specs
from routing import load_rules, route
from schemas import AGENCIES, AgencyRequest, Item, Submission

TODAY = date(2026, 12, 1)


def item(description: str, code: str, *documents: str, sequence: int = 1) -> Item:
    return {"sequence": sequence, "description": description, "commodity_code": code, "origin_country": "KE",
            "cas_numbers": [],
            "documents": [{"category_code": d[0], "type_code": d[1:], "id": "X-1"} for d in documents],
            "quantity": None, "quantity_unit": None, "net_mass_kg": 3.0, "value": 900.0, "currency": "GBP"}


def submission(declaration_type: str, destination: str, *items: Item) -> Submission:
    return {"submission_id": "S", "version": 1, "kind": "DECLARATION", "received_at": 0, "bundle": "nsw",
            "function_code": "9", "trader_reference": "R", "declaration_type": declaration_type,
            "declarant_id": "GB1", "parties": [], "authorisations": [], "export_country": "GB",
            "destination_country": destination, "items": list(items),
            "direction": "EXPORT" if declaration_type.startswith("EX") else "IMPORT"}


def request(agency: str, sub: Submission) -> AgencyRequest:
    return {"request_id": f"S:1:{agency}:n", "submission_id": sub["submission_id"], "version": 1, "agency": agency,
            "requested_at": 0, "trader_reference": "R", "declaration_type": sub["declaration_type"],
            "declarant_id": "GB1", "parties": [], "authorisations": [], "export_country": sub["export_country"],
            "destination_country": sub["destination_country"], "items": sub["items"], "reasons": [],
            "kind": "DECLARATION", "direction": sub.get("direction", "")}


def test_the_configured_agencies_are_the_hubs() -> None:
    assert tuple(spec.name for spec in agency_specs()) == AGENCIES
    assert {"cites", "exportcontrol"} <= set(AGENCIES)
    assert {"cites", "exportcontrol"} <= set(ENGINES)


@pytest.mark.parametrize(
    ("goods", "agencies"),
    [
        (item("Carved elephant ivory figurines", "96019000"), {"customs", "cites"}),
        (item("Worked bone buttons", "96019000"), {"customs", "cites"}),  # by HS: where such specimens go
        (item("Handbags of python skin", "42022100"), {"customs", "cites"}),  # by name, whatever the HS
        (item("Steel screws", "73181500"), {"customs"}),
    ],
)
def test_cites_routing_by_heading_and_by_species_named(goods: Item, agencies: set[str]) -> None:
    routed = route(submission("IMA", "GB", goods), load_rules(on=TODAY))
    assert {a for a, reasons in routed.items() if reasons} == agencies


def test_ivory_needs_a_cites_permit() -> None:
    engine = ENGINES["cites"]
    [held] = engine.decide(request("cites", submission("IMA", "GB", item("Raw ivory tusks", "05071000"))), today=TODAY)
    [released] = engine.decide(request("cites", submission("IMA", "GB", item("Raw ivory tusks", "05071000", "C400"))),
                               today=TODAY)
    assert (held["outcome"], held["hold_reason"]) == ("HOLD", "DOCUMENTS_REQUIRED")
    assert released["outcome"] == "RELEASE"


def test_arms_exports_need_a_licence_and_never_go_to_an_embargoed_destination() -> None:
    rifle = item("Sporting rifles, bolt action", "93033000")
    rules = load_rules(on=TODAY)
    assert "exportcontrol" in {a for a, r in route(submission("EXA", "US", rifle), rules).items() if r}
    assert "exportcontrol" not in {a for a, r in route(submission("IMA", "GB", rifle), rules).items() if r}
    engine = ENGINES["exportcontrol"]
    [unlicensed] = engine.decide(request("exportcontrol", submission("EXA", "US", rifle)), today=TODAY)
    [licensed] = engine.decide(request("exportcontrol", submission("EXA", "US", item("Rifles", "93033000", "X002"))),
                               today=TODAY)
    [embargoed] = engine.decide(request("exportcontrol", submission("EXA", "RU", item("Rifles", "93033000", "X002"))),
                                today=TODAY)
    assert (unlicensed["outcome"], unlicensed["hold_reason"]) == ("HOLD", "DOCUMENTS_REQUIRED")
    assert licensed["outcome"] == "RELEASE"
    assert (embargoed["outcome"], embargoed["code"]) == ("REFUSE", "N01")
