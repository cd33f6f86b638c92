"""Combining agency decisions into one release response: pure functions over the aggregate state.

Rules (README "Release responses"):
- strictest wins per item: REFUSE > HOLD > RELEASE; the consignment takes its strictest item;
- an answer is given only when every agency in the routing plan has decided on the plan's version
  (or, for an agency whose items did not change in an amendment, on the version its decision
  carries over from); an item an agency was asked about but left out of its decision counts as HOLD;
- a decision for any other version is recorded in the timeline and otherwise ignored: a decision
  on an old version never releases a new one;
- the latest decision of an agency counts: when a changed decision changes the combined answer, a
  new response version is issued (a hold becomes a release after inspection), otherwise none;
- a cancellation answers at once with function code 10 (invalidated); later decisions are recorded
  and change nothing;
- an agency that has not decided by its deadline is escalated: an explicit state, never a release.

Who may decide (``check_decision``): a decision counts only when it answers an outstanding request of
the agency that sent it — the agency is the authenticated caller or the topic the decision came from,
never the record's own field; it names the submission, the version the agency was asked about and the
request's id (unguessable, so nobody can decide in advance on a submission that does not exist yet),
and only items it was asked about. Anything else is refused (dead-lettered, with its reason). A
decision that arrives before its plan (the aggregator reads several topics) waits, bounded in number
and time, and is checked when the plan comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, NotRequired, TypedDict

from broker.errors import DecisionRefusedError
from schemas import (
    AgencyDecision,
    AgencyItemReason,
    AgencyOutcome,
    AgencyRoute,
    ItemOutcome,
    Outcome,
    ReleaseResponse,
    RoutingPlan,
)

SEVERITY: Final[dict[Outcome, int]] = {"RELEASE": 0, "HOLD": 1, "REFUSE": 2}

#: WCO DM Response/FunctionCode for each combined outcome.
FUNCTION_CODES: Final[dict[Outcome, str]] = {"RELEASE": "08", "HOLD": "05", "REFUSE": "03"}
DOCUMENTS_REQUIRED_CODE: Final = "06"
INVALIDATED_CODE: Final = "10"

MISSING_ITEM_CODE: Final = "H-NOITEM"

#: Holds that mean "documents required" (agency:code) for decisions that carry no hold reason (written
#: before decisions had one); when every hold is a documents hold the response says 06 instead of 05.
DOCUMENT_HOLDS: Final = frozenset({"sps:H01", "customs:H02", "cwc:H01"})

FINAL_STATUSES: Final = frozenset({"released", "held", "refused", "cancelled"})
TIMELINE_LIMIT: Final = 500
#: Decisions waiting for their routing plan: at most this many per submission, for at most this long.
EARLY_LIMIT: Final = 16
EARLY_TTL_MS: Final = 10 * 60 * 1000

RefusalKind = Literal["wrong-agency", "no-outstanding-request", "superseded", "request-mismatch",
                      "missing-request-id", "item-not-requested", "cancelled", "too-many-waiting"]

#: HTTP status of each refusal (the callback answers with it; a topic's refusal is dead-lettered).
REFUSAL_STATUS: Final[dict[RefusalKind, int]] = {
    "wrong-agency": 403, "no-outstanding-request": 409, "superseded": 409, "request-mismatch": 409,
    "missing-request-id": 422, "item-not-requested": 422, "cancelled": 409, "too-many-waiting": 409,
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a decision is not applied: a problem slug, a sentence and the field it is about."""

    kind: RefusalKind
    message: str
    path: str = ""

    @property
    def status(self) -> int:
        return REFUSAL_STATUS[self.kind]


class EarlyDecision(TypedDict):
    """A decision read before its routing plan, with where it came from (to dead-letter it if it expires)."""

    decision: AgencyDecision
    sender: str  # the agency it came from (its topic), which the plan's request must be for
    received_at: int
    topic: str
    partition: int
    offset: int


class TimelineEvent(TypedDict):
    at: int
    step: str
    version: int
    agency: NotRequired[str]
    detail: NotRequired[str]


class Escalation(TypedDict):
    deadline_at: int
    escalated_at: int


class AggregateState(TypedDict):
    """Everything the aggregator knows about one submission; stored in the changelog topic."""

    submission_id: str
    version: int
    plan: RoutingPlan | None
    decisions: dict[str, AgencyDecision]
    early: list[EarlyDecision | AgencyDecision]  # bare decisions: written before the source was kept
    response: ReleaseResponse | None
    status: str
    updated_at: int
    escalations: NotRequired[dict[str, Escalation]]
    timeline: NotRequired[list[TimelineEvent]]


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
        "escalations": {},
        "timeline": [],
    }


def strictest(outcomes: list[Outcome]) -> Outcome:
    return max(outcomes, key=SEVERITY.__getitem__) if outcomes else "RELEASE"


def record(state: AggregateState, event: TimelineEvent) -> None:
    timeline = state.setdefault("timeline", [])
    timeline.append(event)
    if len(timeline) > TIMELINE_LIMIT:
        del timeline[: len(timeline) - TIMELINE_LIMIT]


def _carried_from(plan: RoutingPlan, agency: str) -> int | None:
    for route in plan["agencies"]:
        if route["agency"] == agency:
            return route.get("carried_from_version")
    return None


def _route(plan: RoutingPlan, agency: str) -> AgencyRoute | None:
    for route in plan["agencies"]:
        if route["agency"] == agency:
            return route
    return None


def check_decision(plan: RoutingPlan | None, decision: AgencyDecision, *, agency: str,
                   cancelled: bool = False) -> Refusal | None:
    """None when ``decision``, sent by ``agency``, answers the request ``plan`` has outstanding for it."""
    if decision["agency"] != agency:
        return Refusal("wrong-agency", f"{agency} cannot decide for {decision['agency']}", "/agency")
    sid, version = decision["submission_id"], decision["version"]
    if plan is None or version > plan["version"]:
        return Refusal("no-outstanding-request",
                       f"no request to {agency} for submission {sid} version {version}", "/submission_id")
    route = _route(plan, agency)
    if route is None:
        return Refusal("no-outstanding-request",
                       f"{agency} was not asked about version {plan['version']} of {sid}", "/version")
    carried = route.get("carried_from_version")
    wanted = carried if carried is not None else plan["version"]
    if version != wanted:
        return Refusal("superseded", f"version {version} of {sid} is not the one to decide: {agency}'s decision "
                       f"on version {wanted} applies to the current version {plan['version']}", "/version")
    if cancelled:
        return Refusal("cancelled", f"submission {sid} was cancelled", "/submission_id")
    expected = route.get("request_id")
    if expected is not None:
        given = decision.get("request_id")
        if not given:
            return Refusal("missing-request-id", "a decision must quote the request_id of the request it answers",
                           "/request_id")
        if given != expected:
            return Refusal("request-mismatch", f"request {given} is not the outstanding request of {agency} "
                           f"for version {version} of {sid}", "/request_id")
    asked = {r["item"] for r in route["reasons"]}
    for n, item in enumerate(decision["items"]):
        if item["sequence"] not in asked:
            return Refusal("item-not-requested", f"item {item['sequence']} was not in the request to {agency}",
                           f"/items/{n}/sequence")
    return None


def early_decision(entry: EarlyDecision | AgencyDecision) -> AgencyDecision:
    """The decision of a waiting entry (entries written before sources were kept are bare decisions)."""
    if "decision" in entry:
        return entry["decision"]  # type: ignore[typeddict-item]
    return entry


def _accepts(plan: RoutingPlan, decision: AgencyDecision) -> bool:
    """Does ``decision`` count for ``plan``'s version?"""
    if not any(route["agency"] == decision["agency"] for route in plan["agencies"]):
        return False
    wanted = _carried_from(plan, decision["agency"])
    return decision["version"] == (wanted if wanted is not None else plan["version"])


def apply_plan(
    state: AggregateState, plan: RoutingPlan, *, now: int, documents_codes: frozenset[str] = DOCUMENT_HOLDS,
    refused: list[tuple[EarlyDecision | AgencyDecision, Refusal]] | None = None,
) -> ReleaseResponse | None:
    """Take a routing plan; one for an older version than the state's is ignored.

    Decisions that waited for this plan are checked against it: those that answer its requests count,
    the others are appended to ``refused`` with the reason (the caller dead-letters them)."""
    if plan["version"] < state["version"]:
        return None
    newer = plan["version"] > state["version"]
    state["updated_at"] = now
    if newer:
        previous = state["decisions"]
        state["decisions"] = {a: d for a, d in previous.items() if _accepts(plan, d)}
        state["escalations"] = {}
        state["version"] = plan["version"]
        record(state, {"at": plan["received_at"], "step": "received", "version": plan["version"],
                       "detail": plan.get("kind", "DECLARATION")})
        record(state, {"at": plan["received_at"], "step": "validated", "version": plan["version"]})
        record(state, {"at": plan["routed_at"], "step": "routed", "version": plan["version"],
                       "detail": ", ".join(r["agency"] for r in plan["agencies"]) or "no agency"})
        for route in plan["agencies"]:
            carried = route.get("carried_from_version")
            if carried is not None:
                record(state, {"at": plan["routed_at"], "step": "carried_over", "version": plan["version"],
                               "agency": route["agency"], "detail": f"decision on version {carried} still applies"})
            else:
                record(state, {"at": plan["routed_at"], "step": "requested", "version": plan["version"],
                               "agency": route["agency"]})
    state["plan"] = plan
    cancelling = plan.get("kind") == "CANCELLATION"
    waiting: list[EarlyDecision | AgencyDecision] = []
    later: list[EarlyDecision | AgencyDecision] = []
    for entry in state["early"]:
        (later if early_decision(entry)["version"] > plan["version"] else waiting).append(entry)
    state["early"] = later
    response = _cancel(state, plan, now=now) if cancelling else None
    for entry in waiting:
        decision = early_decision(entry)
        sender = entry.get("sender") if "decision" in entry else None
        agency = sender if isinstance(sender, str) else decision["agency"]
        refusal = check_decision(plan, decision, agency=agency, cancelled=state["status"] == "cancelled")
        if refusal is not None:
            if refused is not None:
                refused.append((entry, refusal))
            continue
        _record_decided(state, decision)
        state["decisions"][decision["agency"]] = decision
    if cancelling:
        return response
    return _evaluate(state, now=now, documents_codes=documents_codes)


def _decided_event(decision: AgencyDecision) -> TimelineEvent:
    outcomes = sorted({i["outcome"] for i in decision["items"]}, key=SEVERITY.__getitem__)
    return {"at": decision["decided_at"], "step": "decided", "version": decision["version"],
            "agency": decision["agency"], "detail": "/".join(outcomes) or "no items"}


def _record_decided(state: AggregateState, decision: AgencyDecision) -> None:
    record(state, _decided_event(decision))
    state.setdefault("escalations", {}).pop(decision["agency"], None)


def apply_decision(
    state: AggregateState, decision: AgencyDecision, *, now: int, documents_codes: frozenset[str] = DOCUMENT_HOLDS,
    agency: str | None = None, source: tuple[str, int, int] | None = None,
) -> ReleaseResponse | None:
    """Take one decision of ``agency`` (the topic it came from; by default the one it names); return a
    response when it completes or changes the answer. Raise DecisionRefusedError when it answers no
    outstanding request. One read before its plan waits in ``state["early"]`` (``source``: topic,
    partition and offset it came from)."""
    sender = decision["agency"] if agency is None else agency
    plan = state["plan"]
    if decision["agency"] == sender and (plan is None or decision["version"] > state["version"]):
        _wait_for_plan(state, decision, now=now, source=source, sender=sender)
        return None
    refusal = check_decision(plan, decision, agency=sender, cancelled=state["status"] == "cancelled")
    if refusal is not None:
        raise DecisionRefusedError(refusal)
    state["updated_at"] = now
    _record_decided(state, decision)
    state["decisions"][decision["agency"]] = decision
    return _evaluate(state, now=now, documents_codes=documents_codes)


def _wait_for_plan(state: AggregateState, decision: AgencyDecision, *, now: int,
                   source: tuple[str, int, int] | None, sender: str) -> None:
    key = (decision["agency"], decision["version"])
    kept = [e for e in state["early"] if (early_decision(e)["agency"], early_decision(e)["version"]) != key]
    if len(kept) >= EARLY_LIMIT:
        raise DecisionRefusedError(Refusal("too-many-waiting", f"{EARLY_LIMIT} decisions already wait for a routing "
                                      f"plan of {decision['submission_id']}", "/submission_id"))
    topic, partition, offset = source if source is not None else ("", -1, -1)
    kept.append({"decision": decision, "sender": sender, "received_at": now, "topic": topic,
                 "partition": partition, "offset": offset})
    state["early"] = kept
    state["updated_at"] = now


def expire_early(state: AggregateState, *, now: int, ttl_ms: int = EARLY_TTL_MS) -> list[EarlyDecision]:
    """Remove and return the decisions that waited longer than ``ttl_ms`` for a plan that never came."""
    expired: list[EarlyDecision] = []
    kept: list[EarlyDecision | AgencyDecision] = []
    for entry in state["early"]:
        waiting: EarlyDecision = entry if "decision" in entry else {  # type: ignore[assignment]
            "decision": early_decision(entry), "sender": early_decision(entry)["agency"],
            "received_at": state["updated_at"], "topic": "", "partition": -1, "offset": -1}
        (expired if now - waiting["received_at"] >= ttl_ms else kept).append(waiting)
    state["early"] = kept
    return expired


def pending_agencies(state: AggregateState) -> list[str]:
    plan = state["plan"]
    if plan is None or state["status"] == "cancelled":
        return []
    return [route["agency"] for route in plan["agencies"] if route["agency"] not in state["decisions"]]


def escalate_due(state: AggregateState, *, now: int, deadlines: Mapping[str, int]) -> bool:
    """Mark agencies past their deadline (ms after routing) as escalated; True when something changed."""
    plan = state["plan"]
    if plan is None or state["status"] in FINAL_STATUSES:
        return False
    changed = False
    escalations = state.setdefault("escalations", {})
    for agency in pending_agencies(state):
        deadline = deadlines.get(agency)
        if deadline is None or agency in escalations:
            continue
        due = plan["routed_at"] + deadline
        if now >= due:
            escalations[agency] = {"deadline_at": due, "escalated_at": now}
            record(state, {"at": now, "step": "escalated", "version": plan["version"], "agency": agency,
                           "detail": f"no decision by the deadline ({deadline // 1000} s after routing)"})
            changed = True
    if changed:
        state["status"] = "escalated"
        state["updated_at"] = now
    return changed


def _cancel(state: AggregateState, plan: RoutingPlan, *, now: int) -> ReleaseResponse | None:
    if state["status"] == "cancelled":
        return None
    response: ReleaseResponse = {
        "response_id": f"{plan['submission_id']}:{plan['version']}:1",
        "submission_id": plan["submission_id"],
        "version": plan["version"],
        "response_version": 1,
        "issued_at": now,
        "received_at": plan["received_at"],
        "trader_reference": plan["trader_reference"],
        "declarant_id": plan["declarant_id"],
        "outcome": "REFUSE",
        "function_code": INVALIDATED_CODE,
        "agencies": [],
        "items": [],
        "invalidated": True,
        "trader": plan.get("trader", "anonymous"),
    }
    state["status"] = "cancelled"
    state["response"] = response
    state["escalations"] = {}
    record(state, {"at": now, "step": "responded", "version": plan["version"], "detail": "10 invalidated"})
    return response


def _evaluate(state: AggregateState, *, now: int, documents_codes: frozenset[str]) -> ReleaseResponse | None:
    plan = state["plan"]
    if plan is None:
        return None
    if pending_agencies(state):
        state["status"] = "escalated" if state.get("escalations") else "routed"
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
    detail = f"{response['function_code']} {response['outcome']} (response {response['response_version']})"
    record(state, {"at": now, "step": "responded", "version": plan["version"], "detail": detail})
    return response


def _same_answer(a: ReleaseResponse, b: ReleaseResponse) -> bool:
    return a["outcome"] == b["outcome"] and a["items"] == b["items"]


def _documents_hold(reason: AgencyItemReason, documents_codes: frozenset[str]) -> bool:
    """A hold the trader lifts by presenting documents: by its hold reason, or for decisions without
    one by the agency's code."""
    if reason.get("hold_reason") is not None:
        return reason.get("hold_reason") == "DOCUMENTS_REQUIRED"
    return f"{reason['agency']}:{reason['code']}" in documents_codes


def combine(
    plan: RoutingPlan,
    decisions: Mapping[str, AgencyDecision],
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
                {"agency": agency, "outcome": item["outcome"], "code": item["code"], "reason": item["reason"],
                 "hold_reason": item.get("hold_reason"), "valid_until": item.get("valid_until")}
                if item is not None
                else {"agency": agency, "outcome": "HOLD", "code": MISSING_ITEM_CODE,
                      "reason": f"{agency} was asked about item {seq} but its decision does not cover it",
                      "hold_reason": "OTHER", "valid_until": None}
            )
            per_item.setdefault(seq, []).append(reason)
            agency_outcomes.append(reason["outcome"])
        agencies.append({
            "agency": agency,
            "outcome": strictest(agency_outcomes),
            "decision_id": decision["decision_id"],
            "decided_at": decision["decided_at"],
            "carried_from_version": route.get("carried_from_version"),
            "agency_reference": decision.get("agency_reference"),
        })
    items: list[ItemOutcome] = [
        {"sequence": seq, "outcome": strictest([r["outcome"] for r in reasons]), "reasons": reasons}
        for seq, reasons in sorted(per_item.items())
    ]
    outcome = strictest([i["outcome"] for i in items])
    function_code = FUNCTION_CODES[outcome]
    if outcome == "HOLD" and documents_codes:
        holds = [r for i in items for r in i["reasons"] if r["outcome"] == "HOLD"]
        if holds and all(_documents_hold(r, documents_codes) for r in holds):
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
        "invalidated": False,
        "trader": plan.get("trader", "anonymous"),
    }
