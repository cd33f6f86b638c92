"""What the trader's page says (console/_trader.py), from real aggregate states: pure, no broker."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from broker._aggregate import AggregateState, apply_decision, apply_plan, escalate_due, new_state
from broker._lodgement import Known
from broker._view import Entry, StatusView
from console._app import _templates
from console._trader import awaited, marks_of, picture, row_of, search, submission_context
from schemas import AgencyDecision, HoldReason, Outcome, RoutingPlan

T0 = 1_780_000_000_000
HOUR = 3_600_000


def plan(reference: str = "LRN-1") -> RoutingPlan:
    return {"submission_id": "S1", "version": 1, "routed_at": T0 + 40, "received_at": T0, "trader_reference": reference,
            "declarant_id": "GB1", "item_sequences": [1, 2], "trader": "acme",
            "agencies": [{"agency": "customs", "reasons": [{"item": 1, "rule": "C", "why": "t"},
                                                           {"item": 2, "rule": "C", "why": "t"}]},
                         {"agency": "sps", "reasons": [{"item": 2, "rule": "S", "why": "t"}]}]}


def decision(agency: str, items: dict[int, tuple[Outcome, str, HoldReason | None]], at: int,
             reference: str | None = None) -> AgencyDecision:
    return {"decision_id": f"{agency}-{at}", "submission_id": "S1", "version": 1, "agency": agency, "decided_at": at,
            "agency_reference": reference,
            "items": [{"sequence": seq, "outcome": o, "code": "H01" if o == "HOLD" else "C01", "reason": why,
                       "hold_reason": hold} for seq, (o, why, hold) in items.items()]}


def entry_of(state: AggregateState, trader: str = "acme") -> Entry:
    return Entry("S1", state["version"], T0, Known(state["version"]), trader, "GB1", state)


def held_by_sps(reason: str = "Documents required: phytosanitary certificate (N851) not declared.") -> Entry:
    state = new_state("S1")
    apply_plan(state, plan(), now=T0 + 40)
    apply_decision(state, decision("customs", {1: ("RELEASE", "green", None), 2: ("RELEASE", "green", None)},
                                   T0 + 300), now=T0 + 300)
    apply_decision(state, decision("sps", {2: ("HOLD", reason, "DOCUMENTS_REQUIRED")}, T0 + 310, "SPS-77"),
                   now=T0 + 320)
    return entry_of(state)


def test_the_marks_tell_the_story_in_lanes() -> None:
    marks = marks_of(held_by_sps())
    assert [(m.lane, m.step) for m in marks] == [
        ("hub", "received"), ("hub", "validated"), ("hub", "routed"), ("customs", "requested"),
        ("sps", "requested"), ("customs", "decided"), ("sps", "decided"), ("trader", "responded")]
    received, *_, sps, responded = marks
    assert received.source == "trader"
    assert received.at == T0
    assert sps.tone == "hold"
    assert "N851" in sps.detail
    assert "SPS-77" in sps.detail
    assert responded.label == "06 documents required"
    assert responded.source == "hub"
    assert responded.tone == "hold"


def test_a_held_item_says_which_documents_and_whose_reference() -> None:
    said = awaited(held_by_sps(), deadlines_ms={})
    assert said.waiting == []
    assert [(a.sequence, a.agency, a.outcome, a.hold_reason) for a in said.actions] == [
        (2, "sps", "HOLD", "DOCUMENTS_REQUIRED")]
    action = said.actions[0]
    assert "N851" in action.reason
    assert "documents" in action.todo.lower()
    assert action.agency_reference == "SPS-77"


def test_an_inspection_hold_asks_for_the_goods() -> None:
    state = new_state("S1")
    apply_plan(state, plan(), now=T0 + 40)
    apply_decision(state, decision("customs", {1: ("HOLD", "Red lane", "INSPECTION"), 2: ("RELEASE", "ok", None)},
                                   T0 + 50), now=T0 + 50)
    apply_decision(state, decision("sps", {2: ("RELEASE", "ok", None)}, T0 + 60), now=T0 + 60)
    said = awaited(entry_of(state), deadlines_ms={})
    assert [a.hold_reason for a in said.actions] == ["INSPECTION"]
    assert "presented" in said.actions[0].todo


def test_pending_and_escalated_agencies_with_their_deadlines() -> None:
    state = new_state("S1")
    apply_plan(state, plan(), now=T0 + 40)
    apply_decision(state, decision("customs", {1: ("RELEASE", "ok", None), 2: ("RELEASE", "ok", None)}, T0 + 50),
                   now=T0 + 50)
    deadlines = {"sps": 4 * HOUR, "customs": HOUR}
    said = awaited(entry_of(state), deadlines_ms=deadlines)
    assert [(w.agency, w.requested_at, w.due_at, w.escalated_at) for w in said.waiting] == [
        ("sps", T0 + 40, T0 + 40 + 4 * HOUR, None)]
    assert "sps" in said.summary
    escalate_due(state, now=T0 + 5 * HOUR, deadlines=deadlines)
    said = awaited(entry_of(state), deadlines_ms=deadlines)
    assert [(w.agency, w.due_at, w.escalated_at) for w in said.waiting] == [("sps", T0 + 40 + 4 * HOUR, T0 + 5 * HOUR)]
    assert [m.step for m in marks_of(entry_of(state))][-1] == "escalated"
    assert marks_of(entry_of(state))[-1].tone == "alert"


def test_a_release_after_inspection_shows_both_responses() -> None:
    entry = held_by_sps()
    assert entry.state is not None
    apply_decision(entry.state, decision("sps", {2: ("RELEASE", "Inspected, no finding", None)}, T0 + 2 * HOUR),
                   now=T0 + 2 * HOUR)
    marks = marks_of(entry)
    assert [m.label for m in marks if m.step == "responded"] == ["06 documents required", "08 released"]
    assert awaited(entry, deadlines_ms={}).summary == "Nothing: the goods are released."
    row = row_of(entry)
    assert (row.function_code, row.response_version, row.trader_reference, row.status) == ("08", 2, "LRN-1",
                                                                                           "released")


def test_before_routing_only_the_lodgement_is_known() -> None:
    entry = Entry("S1", 1, T0, Known(1, {1: "d"}), "acme")
    assert [(m.step, m.at) for m in marks_of(entry)] == [("received", T0), ("validated", T0)]
    assert "validating and routing" in awaited(entry, deadlines_ms={}).summary


def test_the_picture_escapes_a_hostile_reference_and_reason() -> None:
    hostile = "<script>alert(1)</script>"
    state = new_state("S1")
    apply_plan(state, plan(reference=hostile), now=T0 + 40)
    apply_decision(state, decision("customs", {1: ("REFUSE", hostile, None), 2: ("RELEASE", "ok", None)}, T0 + 50),
                   now=T0 + 50)
    apply_decision(state, decision("sps", {2: ("RELEASE", "ok", None)}, T0 + 60), now=T0 + 60)
    entry = entry_of(state)
    svg = picture(entry, marks_of(entry))
    assert "<script" not in svg
    assert hostile in (ET.fromstring(svg).find("{http://www.w3.org/2000/svg}title").text or "")  # type: ignore[union-attr]
    assert [a.outcome for a in awaited(entry, deadlines_ms={}).actions] == ["REFUSE"]


def test_search_finds_own_submissions_by_id_or_reference_only() -> None:
    view = StatusView("unused:9092")
    for n, trader in enumerate(["acme", "acme", "globex"]):
        sid = f"S{n}"
        view.accepted(sid, version=1, received_at=T0 + n, digest="d", kind="DECLARATION", trader=trader)
        state = new_state(sid)
        apply_plan(state, {**plan(reference=f"LRN-{trader}-{n}"), "submission_id": sid}, now=T0 + 40)
        entry = view.get(sid)
        assert entry is not None
        entry.state = state
    assert [e.submission_id for e in search(view, "acme", "s1")] == ["S1"]
    assert [e.submission_id for e in search(view, "acme", "lrn-acme")] == ["S1", "S0"]
    assert search(view, "acme", "S2") == []  # globex's, not found by id
    assert search(view, "acme", "globex") == []  # nor by its reference
    assert search(view, "acme", "   ") == []


def test_the_page_escapes_hostile_references_and_reasons() -> None:
    hostile = '<script>alert("x")</script>'
    state = new_state("S1")
    apply_plan(state, plan(reference=hostile), now=T0 + 40)
    apply_decision(state, decision("customs", {1: ("HOLD", hostile, "OTHER"), 2: ("RELEASE", "ok", None)}, T0 + 50,
                                   reference=hostile), now=T0 + 50)
    apply_decision(state, decision("sps", {2: ("RELEASE", "ok", None)}, T0 + 60), now=T0 + 60)
    page = _templates().get_template("trader_submission.html").render(
        prefix="/console", principal=None, csrf="", path="/console/trader/submissions/S1",
        **submission_context(entry_of(state), deadlines_ms={}, signed=True))
    assert "<script>alert" not in page
    assert page.count("&lt;script&gt;") >= 4  # the reference, the reason (twice), the agency reference
    assert "05 held" in page
    assert 'role="img"' in page


def test_webhook_deliveries_are_on_the_traders_lane() -> None:
    entry = held_by_sps()
    entry.webhooks["d1"] = {"delivery_id": "d1", "version": 1, "response_version": 1, "status": "failed",
                            "attempts": 8, "last_error": "connect refused", "created_at": T0 + 320,
                            "delivered_at": None, "failed_at": T0 + HOUR}
    last = marks_of(entry)[-1]
    assert (last.lane, last.step, last.tone, last.label) == ("trader", "webhook", "alert", "webhook failed")
    assert "8 attempt(s): connect refused" in last.detail


def test_an_amendment_waiting_for_routing_shows_its_lodgement() -> None:
    entry = held_by_sps()
    entry.known.digests.update({1: "d1", 2: "d2"})
    entry.known.version = entry.version = 2
    entry.received_at = T0 + HOUR
    marks = marks_of(entry)
    assert [(m.step, m.version, m.at) for m in marks[-2:]] == [("received", 2, T0 + HOUR), ("validated", 2, T0 + HOUR)]
    assert entry.status == "accepted"
    assert "version 2" in awaited(entry, deadlines_ms={}).summary
    page = submission_context(entry, deadlines_ms={}, signed=False)
    assert page["response"] is not None
    assert not page["response_is_current"]
