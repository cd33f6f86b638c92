"""Combining agency decisions into one release response: pure functions over the aggregate state.

Rules (see README "Release responses"):
- strictest wins per item: REFUSE > HOLD > RELEASE; the consignment takes its strictest item;
- an answer is given only when every agency in the routing plan has decided on the plan's
  version; an item an agency was asked about but left out of its decision counts as HOLD;
- decisions are versioned: one for an older version is ignored, one for a newer version waits
  for that version's plan;
- the latest decision of an agency counts; when a changed decision changes the combined answer,
  a new response version is issued (a hold becomes a release after inspection), otherwise none.
"""

from __future__ import annotations

from typing import Final, TypedDict

from schemas import (
    AgencyDecision,
    AgencyItemReason,
    AgencyOutcome,
    ItemOutcome,
    Outcome,
    ReleaseResponse,
    RoutingPlan,
)

SEVERITY: Final[dict[Outcome, int]] = {"RELEASE": 0, "HOLD": 1, "REFUSE": 2}

#: WCO DM Response/FunctionCode for each combined outcome.
FUNCTION_CODES: Final[dict[Outcome, str]] = {"RELEASE": "08", "HOLD": "05", "REFUSE": "03"}
DOCUMENTS_REQUIRED_CODE: Final = "06"

MISSING_ITEM_CODE: Final = "H-NOITEM"

#: Holds that mean "documents required" (agency:code); when every hold is one of these the
#: response says 06 instead of 05. Codes are the reference engines' (see each engine's docstring).
DOCUMENT_HOLDS: Final = frozenset({"sps:H01", "customs:H02", "cwc:H01"})


class AggregateState(TypedDict):
    """Everything the aggregator knows about one submission; stored in the changelog topic."""

    submission_id: str
    version: int
    plan: RoutingPlan | None
    decisions: dict[str, AgencyDecision]
    early: list[AgencyDecision]
    response: ReleaseResponse | None
    status: str
    updated_at: int


def new_state(submission_id: str) -> AggregateState:
    return {
        "submission_id": submission_id,
        "version": 0,
        "plan": None,
        "decisions": {},
        "early": [],
        "response": None,
        "status": "accepted",
        "updated_at": 0,
    }


def strictest(outcomes: list[Outcome]) -> Outcome:
    return max(outcomes, key=SEVERITY.__getitem__) if outcomes else "RELEASE"


def apply_plan(
    state: AggregateState, plan: RoutingPlan, *, now: int, documents_codes: frozenset[str] = DOCUMENT_HOLDS
) -> ReleaseResponse | None:
    """Take a routing plan; a plan for an older version than the state's is ignored."""
    if plan["version"] < state["version"]:
        return None
    if plan["version"] > state["version"]:
        state["decisions"] = {}
        state["response"] = None if state["version"] == 0 else state["response"]
    state["version"] = plan["version"]
    state["plan"] = plan
    early = [d for d in state["early"] if d["version"] == plan["version"]]
    state["early"] = [d for d in state["early"] if d["version"] > plan["version"]]
    for decision in early:
        state["decisions"][decision["agency"]] = decision
    state["updated_at"] = now
    return _evaluate(state, now=now, documents_codes=documents_codes)


def apply_decision(
    state: AggregateState, decision: AgencyDecision, *, now: int, documents_codes: frozenset[str] = DOCUMENT_HOLDS
) -> ReleaseResponse | None:
    """Take one agency decision; return a response when it completes or changes the answer."""
    state["updated_at"] = now
    if decision["version"] < state["version"]:
        return None
    if state["plan"] is None or decision["version"] > state["version"]:
        state["early"] = [
            d for d in state["early"]
            if (d["agency"], d["version"]) != (decision["agency"], decision["version"])
        ]
        state["early"].append(decision)
        return None
    state["decisions"][decision["agency"]] = decision
    return _evaluate(state, now=now, documents_codes=documents_codes)


def pending_agencies(state: AggregateState) -> list[str]:
    plan = state["plan"]
    if plan is None:
        return []
    return [route["agency"] for route in plan["agencies"] if route["agency"] not in state["decisions"]]


def _evaluate(state: AggregateState, *, now: int, documents_codes: frozenset[str]) -> ReleaseResponse | None:
    plan = state["plan"]
    if plan is None:
        return None
    if pending_agencies(state):
        state["status"] = "routed"
        return None
    previous = state["response"] if state["response"] and state["response"]["version"] == plan["version"] else None
    response = combine(
        plan,
        state["decisions"],
        response_version=(previous["response_version"] + 1) if previous else 1,
        now=now,
        documents_codes=documents_codes,
    )
    state["status"] = {"RELEASE": "released", "HOLD": "held", "REFUSE": "refused"}[response["outcome"]]
    if previous is not None and _same_answer(previous, response):
        return None
    state["response"] = response
    return response


def _same_answer(a: ReleaseResponse, b: ReleaseResponse) -> bool:
    return a["outcome"] == b["outcome"] and a["items"] == b["items"]


def combine(
    plan: RoutingPlan,
    decisions: dict[str, AgencyDecision],
    *,
    response_version: int,
    now: int,
    documents_codes: frozenset[str] = DOCUMENT_HOLDS,
) -> ReleaseResponse:
    """The one answer for ``plan``'s version from every required agency's decision."""
    per_item: dict[int, list[AgencyItemReason]] = {seq: [] for seq in plan["item_sequences"]}
    agencies: list[AgencyOutcome] = []
    for route in plan["agencies"]:
        agency = route["agency"]
        decision = decisions[agency]
        by_seq = {d["sequence"]: d for d in decision["items"]}
        agency_outcomes: list[Outcome] = []
        for seq in dict.fromkeys(r["item"] for r in route["reasons"]):
            item = by_seq.get(seq)
            reason: AgencyItemReason = (
                {"agency": agency, "outcome": item["outcome"], "code": item["code"], "reason": item["reason"]}
                if item is not None
                else {"agency": agency, "outcome": "HOLD", "code": MISSING_ITEM_CODE,
                      "reason": f"{agency} was asked about item {seq} but its decision does not cover it"}
            )
            per_item.setdefault(seq, []).append(reason)
            agency_outcomes.append(reason["outcome"])
        agencies.append({
            "agency": agency,
            "outcome": strictest(agency_outcomes),
            "decision_id": decision["decision_id"],
            "decided_at": decision["decided_at"],
        })
    items: list[ItemOutcome] = [
        {"sequence": seq, "outcome": strictest([r["outcome"] for r in reasons]), "reasons": reasons}
        for seq, reasons in sorted(per_item.items())
    ]
    outcome = strictest([i["outcome"] for i in items])
    function_code = FUNCTION_CODES[outcome]
    if outcome == "HOLD" and documents_codes:
        holds = [f"{r['agency']}:{r['code']}" for i in items for r in i["reasons"] if r["outcome"] == "HOLD"]
        if holds and all(code in documents_codes for code in holds):
            function_code = DOCUMENTS_REQUIRED_CODE
    return {
        "response_id": f"{plan['submission_id']}:{plan['version']}:{response_version}",
        "submission_id": plan["submission_id"],
        "version": plan["version"],
        "response_version": response_version,
        "issued_at": now,
        "received_at": plan["received_at"],
        "trader_reference": plan["trader_reference"],
        "declarant_id": plan["declarant_id"],
        "outcome": outcome,
        "function_code": function_code,
        "agencies": agencies,
        "items": items,
    }
