"""Combining decisions: strictest wins, versions, missing items, changed minds. No broker needed."""

from __future__ import annotations

import pytest

from broker import apply_decision, apply_plan, combine, new_state, strictest
from broker.errors import DecisionRefusedError
from schemas import AgencyDecision, ItemDecision, Outcome, RoutingPlan


def plan(version: int = 1, agencies: dict[str, list[int]] | None = None) -> RoutingPlan:
    agencies = agencies or {"customs": [1, 2], "sps": [2]}
    return {
        "submission_id": "S1",
        "version": version,
        "routed_at": 10,
        "received_at": 5,
        "trader_reference": "LRN-1",
        "declarant_id": "GB1",
        "item_sequences": sorted({i for items in agencies.values() for i in items}),
        "agencies": [
            {"agency": a, "reasons": [{"item": i, "rule": f"R-{a}", "why": "test"} for i in items]}
            for a, items in agencies.items()
        ],
    }


def decision(agency: str, outcomes: dict[int, Outcome], version: int = 1) -> AgencyDecision:
    items: list[ItemDecision] = [
        {"sequence": seq, "outcome": o, "code": {"RELEASE": "C01", "HOLD": "H01", "REFUSE": "N01"}[o],
         "reason": "test"}
        for seq, o in outcomes.items()
    ]
    return {"decision_id": f"{agency}-{version}", "submission_id": "S1", "version": version, "agency": agency,
            "decided_at": 20, "items": items}


def test_strictest_order() -> None:
    assert strictest(["RELEASE", "HOLD"]) == "HOLD"
    assert strictest(["HOLD", "REFUSE", "RELEASE"]) == "REFUSE"
    assert strictest(["RELEASE"]) == "RELEASE"


def test_no_answer_until_every_agency_decided() -> None:
    state = new_state("S1")
    assert apply_plan(state, plan(), now=11) is None
    assert apply_decision(state, decision("customs", {1: "RELEASE", 2: "RELEASE"}), now=12) is None
    assert state["status"] == "routed"
    response = apply_decision(state, decision("sps", {2: "RELEASE"}), now=13)
    assert response is not None
    assert response["outcome"] == "RELEASE"
    assert response["function_code"] == "08"
    assert [a["agency"] for a in response["agencies"]] == ["customs", "sps"]
    assert state["status"] == "released"


def test_strictest_wins_per_item_and_overall() -> None:
    state = new_state("S1")
    apply_plan(state, plan(), now=11)
    apply_decision(state, decision("customs", {1: "RELEASE", 2: "HOLD"}), now=12)
    response = apply_decision(state, decision("sps", {2: "REFUSE"}), now=13)
    assert response is not None
    assert [(i["sequence"], i["outcome"]) for i in response["items"]] == [(1, "RELEASE"), (2, "REFUSE")]
    assert response["outcome"] == "REFUSE"
    assert response["function_code"] == "03"


def test_decision_before_plan_waits_for_it() -> None:
    state = new_state("S1")
    assert apply_decision(state, decision("sps", {2: "RELEASE"}), now=12) is None
    assert apply_decision(state, decision("customs", {1: "RELEASE", 2: "RELEASE"}), now=12) is None
    response = apply_plan(state, plan(), now=13)
    assert response is not None
    assert response["outcome"] == "RELEASE"


def test_item_left_out_of_a_decision_holds() -> None:
    state = new_state("S1")
    apply_plan(state, plan(agencies={"customs": [1, 2]}), now=11)
    response = apply_decision(state, decision("customs", {1: "RELEASE"}), now=12)
    assert response is not None
    assert response["outcome"] == "HOLD"
    assert response["items"][1]["reasons"][0]["code"] == "H-NOITEM"


def test_old_version_decision_never_releases_new_version() -> None:
    state = new_state("S1")
    apply_plan(state, plan(version=2, agencies={"customs": [1]}), now=11)
    with pytest.raises(DecisionRefusedError, match="superseded"):
        apply_decision(state, decision("customs", {1: "RELEASE"}, version=1), now=12)
    assert state["status"] == "routed"
    response = apply_decision(state, decision("customs", {1: "HOLD"}, version=2), now=13)
    assert response is not None
    assert response["version"] == 2
    assert response["outcome"] == "HOLD"


def test_changed_decision_issues_new_response_version() -> None:
    state = new_state("S1")
    apply_plan(state, plan(agencies={"customs": [1]}), now=11)
    first = apply_decision(state, decision("customs", {1: "HOLD"}), now=12)
    assert first is not None
    assert first["response_version"] == 1
    same = apply_decision(state, decision("customs", {1: "HOLD"}), now=13)
    assert same is None
    second = apply_decision(state, decision("customs", {1: "RELEASE"}), now=14)
    assert second is not None
    assert second["response_version"] == 2
    assert second["outcome"] == "RELEASE"
    assert second["response_id"] == "S1:1:2"


def test_documents_required_code_when_every_hold_is_for_documents() -> None:
    response = combine(plan(agencies={"sps": [1]}), {"sps": decision("sps", {1: "HOLD"})},
                       response_version=1, now=1, documents_codes=frozenset({"sps:H01"}))
    assert response["function_code"] == "06"
    other = combine(plan(agencies={"sps": [1]}), {"sps": decision("sps", {1: "HOLD"})},
                    response_version=1, now=1, documents_codes=frozenset({"customs:H01"}))
    assert other["function_code"] == "05"
