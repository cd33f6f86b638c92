"""Combining decisions: strictest wins, versions, missing items, changed minds. No broker needed."""

from __future__ import annotations

import pytest

from broker import apply_decision, apply_plan, combine, new_state, strictest
from broker._aggregate import EARLY_LIMIT, EARLY_TTL_MS, EarlyDecision, Refusal, expire_early
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


# --------------------------------------------------------------------------- who may decide


def bound_plan(version: int = 1) -> RoutingPlan:
    """A plan whose requests carry ids, as the router makes them today."""
    made = plan(version=version, agencies={"customs": [1], "ipr": [2]})
    for route in made["agencies"]:
        route["request_id"] = f"S1:{version}:{route['agency']}:nonce"
    return made


def quoting(agency: str, outcomes: dict[int, Outcome], version: int = 1, **changes: object) -> AgencyDecision:
    return {**decision(agency, outcomes, version), "request_id": f"S1:{version}:{agency}:nonce", **changes}  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("made", "sender", "kind"),
    [
        (quoting("ipr", {2: "RELEASE"}), "sps", "wrong-agency"),  # the record names IPR, the topic is SPS's
        (quoting("sps", {2: "RELEASE"}), "sps", "no-outstanding-request"),  # SPS was not asked
        (quoting("ipr", {2: "RELEASE"}, request_id="S1:1:ipr:guessed"), "ipr", "request-mismatch"),
        (quoting("ipr", {2: "RELEASE"}, request_id=None), "ipr", "missing-request-id"),
        (quoting("ipr", {1: "RELEASE", 2: "RELEASE"}), "ipr", "item-not-requested"),  # item 1 is customs'
    ],
    ids=["cross-agency", "not-asked", "guessed-request", "no-request-id", "item-not-asked"],
)
def test_decisions_that_answer_no_outstanding_request_are_refused(made: AgencyDecision, sender: str,
                                                                  kind: str) -> None:
    state = new_state("S1")
    apply_plan(state, bound_plan(), now=11)
    apply_decision(state, quoting("customs", {1: "RELEASE"}), now=12)
    before = repr(state)
    with pytest.raises(DecisionRefusedError) as refused:
        apply_decision(state, made, now=13, agency=sender)
    assert refused.value.refusal.kind == kind  # type: ignore[attr-defined]
    assert repr(state) == before  # nothing recorded, nothing changed


def test_a_decision_before_its_plan_counts_only_if_it_quotes_the_plans_request() -> None:
    state = new_state("S1")
    apply_decision(state, quoting("customs", {1: "RELEASE"}), now=1, agency="customs", source=("t", 0, 5))
    apply_decision(state, quoting("ipr", {2: "RELEASE"}, request_id="S1:1:ipr:guessed"), now=2, agency="ipr",
                   source=("t", 0, 6))
    refused: list[tuple[EarlyDecision | AgencyDecision, Refusal]] = []
    assert apply_plan(state, bound_plan(), now=3, refused=refused) is None  # IPR has not really decided
    assert [r.kind for _, r in refused] == ["request-mismatch"]
    assert set(state["decisions"]) == {"customs"}
    response = apply_decision(state, quoting("ipr", {2: "HOLD"}), now=4, agency="ipr")
    assert response is not None
    assert response["outcome"] == "HOLD"


def test_decisions_waiting_for_a_plan_that_never_comes_expire() -> None:
    state = new_state("S9")
    apply_decision(state, {**quoting("ipr", {1: "RELEASE"}), "submission_id": "S9"}, now=1_000, agency="ipr",
                   source=("nsw.agency.ipr.decisions", 2, 40))
    assert expire_early(state, now=1_000 + EARLY_TTL_MS - 1) == []
    [gone] = expire_early(state, now=1_000 + EARLY_TTL_MS)
    assert (gone["topic"], gone["partition"], gone["offset"]) == ("nsw.agency.ipr.decisions", 2, 40)
    assert state["early"] == []


def test_waiting_decisions_are_bounded_per_submission() -> None:
    state = new_state("S1")
    for version in range(1, EARLY_LIMIT + 1):
        apply_decision(state, quoting("ipr", {2: "RELEASE"}, version=version), now=1, agency="ipr")
    with pytest.raises(DecisionRefusedError, match="too-many-waiting"):
        apply_decision(state, quoting("ipr", {2: "RELEASE"}, version=EARLY_LIMIT + 1), now=1, agency="ipr")
