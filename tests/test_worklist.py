"""The worklist index (pure): which work opens, in which order, filters with counts, paging, summaries."""

from __future__ import annotations

from typing import Any

from broker._aggregate import AggregateState
from console._worklist import Filters, RequestSummary, Worklist, open_work

HOUR = 3600 * 1000
REVIEW = {"sps": 24 * HOUR, "customs": 4 * HOUR, "ipr": 240 * HOUR}


def state(sid: str, *, received: int = 1_000, decisions: dict[str, list[dict[str, Any]]] | None = None,
          agencies: tuple[str, ...] = ("customs", "sps"), status: str = "held", decided_at: int = 10_000,
          escalated: dict[str, int] | None = None, version: int = 1) -> AggregateState:
    routes = [{"agency": a, "reasons": [{"item": 1, "rule": f"{a.upper()}-R", "why": "asked"}],
               "request_id": f"{sid}:{version}:{a}:00"} for a in agencies]
    built: dict[str, Any] = {
        "submission_id": sid, "version": version, "status": status, "updated_at": 0, "early": [], "response": None,
        "plan": {"submission_id": sid, "version": version, "routed_at": received + 5, "received_at": received,
                 "trader_reference": f"REF-{sid}", "declarant_id": "GB1", "item_sequences": [1], "agencies": routes},
        "decisions": {a: {"decision_id": f"{a}-d", "submission_id": sid, "version": version, "agency": a,
                          "decided_at": decided_at, "items": items} for a, items in (decisions or {}).items()},
        "escalations": {a: {"deadline_at": at, "escalated_at": at + 1} for a, at in (escalated or {}).items()},
        "timeline": [],
    }
    return built  # type: ignore[return-value]


def hold(code: str = "H01", reason: str = "DOCUMENTS_REQUIRED", until: str | None = None) -> list[dict[str, Any]]:
    return [{"sequence": 1, "outcome": "HOLD", "code": code, "reason": "held", "hold_reason": reason,
             "valid_until": until}]


RELEASE = [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "ok", "hold_reason": None,
            "valid_until": None}]


def summary(version: int = 1, origin: str = "NL", code: str = "06029050") -> RequestSummary:
    return RequestSummary(version, "r", ((1, code, origin, "live plants"),), "nsw.agency.sps.requests", 0, 7)


def test_a_hold_opens_work_for_the_holding_agency_only() -> None:
    work = open_work(state("A", decisions={"sps": hold(), "customs": RELEASE}), trader="t", review_ms=REVIEW)
    assert set(work) == {"sps"}
    item = work["sps"]
    assert item.state == "held"
    assert item.lanes == ("yellow",)
    assert item.reasons == ("DOCUMENTS_REQUIRED",)
    assert item.due_at == 10_000 + 24 * HOUR


def test_customs_lanes_come_from_its_codes_and_escalations_are_due_at_their_deadline() -> None:
    work = open_work(state("A", decisions={"customs": hold("H01", "INSPECTION")}, escalated={"sps": 7_000}),
                     trader="t", review_ms=REVIEW)
    assert work["customs"].lanes == ("red",)
    assert work["sps"].state == "escalated"
    assert work["sps"].due_at == 7_000


def test_an_ipr_suspension_is_due_by_the_end_of_its_valid_until_day() -> None:
    work = open_work(state("A", agencies=("ipr",), decisions={"ipr": hold("H01", "IPR_SUSPENSION", "1970-01-02")}),
                     trader="t", review_ms=REVIEW)
    assert work["ipr"].due_at == 2 * 24 * HOUR - 1


def test_no_work_for_a_cancelled_or_unrouted_submission_or_a_decision_on_another_version() -> None:
    assert open_work(state("A", decisions={"sps": hold()}, status="cancelled"), trader="t", review_ms=REVIEW) == {}
    refused = state("A", decisions={"sps": hold(), "customs": [{**RELEASE[0], "outcome": "REFUSE", "code": "N01"}]},
                    status="refused")
    assert open_work(refused, trader="t", review_ms=REVIEW) == {}, "another agency's refusal stands"
    stale = state("A", decisions={"sps": hold()}, version=2)
    stale["decisions"]["sps"]["version"] = 1
    assert open_work(stale, trader="t", review_ms=REVIEW) == {}


def test_the_worklist_orders_by_deadline_then_age_and_pages_with_a_cursor() -> None:
    worklist = Worklist(review_ms=REVIEW)
    for n in range(120):
        worklist.update(state(f"S{n:03d}", received=n, decisions={"sps": hold()}, decided_at=(n % 7) * 1000),
                        trader=f"trader{n % 3}")
    first = worklist.query("sps", limit=50)
    assert first.total == 120
    keys = [i.key for i in first.items]
    assert keys == sorted(keys)
    second = worklist.query("sps", after=first.next_cursor, limit=50)
    third = worklist.query("sps", after=second.next_cursor, limit=50)
    seen = [i.submission_id for p in (first, second, third) for i in p.items]
    assert len(seen) == len(set(seen)) == 120
    assert third.next_cursor is None
    assert worklist.query("customs").total == 0


def test_filters_and_their_counts_follow_items_as_they_come_and_go() -> None:
    worklist = Worklist(review_ms=REVIEW)
    for n in range(10):
        worklist.update(state(f"S{n}", decisions={"sps": hold()}), trader="acme" if n < 4 else "other")
    page = worklist.query("sps", Filters(trader="acme"))
    assert page.total == 4
    assert dict(page.facets["trader"]) == {"acme": 4, "other": 6}
    worklist.update(state("S0", decisions={"sps": RELEASE}, status="released"), trader="acme")
    page = worklist.query("sps", Filters(trader="acme"))
    assert page.total == 3
    assert dict(page.facets["trader"])["acme"] == 3
    assert worklist.query("sps", search="REF-S5").items[0].submission_id == "S5"
    assert worklist.query("sps", search="S6").total == 1


def test_request_summaries_give_origin_and_chapter_in_either_order() -> None:
    worklist = Worklist(review_ms=REVIEW)
    worklist.update(state("A", decisions={"sps": hold()}), trader="t")
    worklist.learn_request("sps", "A", summary(), state=None, trader="t")  # after the state
    worklist.learn_request("sps", "B", summary(origin="KE", code="07099990"), state=None, trader="t")  # before
    worklist.update(state("B", decisions={"sps": hold()}), trader="t")
    assert worklist.query("sps", Filters(origin="NL")).items[0].submission_id == "A"
    assert worklist.query("sps", Filters(chapter="07")).items[0].submission_id == "B"
    # Released with nothing left to do: the summary is not kept.
    worklist.update(state("A", decisions={"sps": RELEASE}, status="released"), trader="t")
    assert worklist.request("sps", "A") is None
    worklist.learn_request("sps", "C", summary(), state=state("C", decisions={"sps": RELEASE}, status="released"),
                           trader="t")
    assert worklist.request("sps", "C") is None


def test_a_hundred_thousand_open_items_page_and_close() -> None:
    worklist = Worklist(review_ms=REVIEW)
    for n in range(100_000):
        worklist.update(state(f"S{n:06d}", received=n, decisions={"sps": hold()}, decided_at=n % 1000),
                        trader=f"t{n % 50}")
    assert len(worklist) == 100_000
    page = worklist.query("sps", limit=50)
    assert page.total == 100_000
    assert [i.submission_id for i in page.items][:2] == ["S000000", "S001000"]
    deep = worklist.query("sps", Filters(trader="t49"), limit=50)
    assert deep.total == 2_000
    for n in range(0, 100_000, 2):
        worklist.update(state(f"S{n:06d}", decisions={"sps": RELEASE}, status="released"), trader=f"t{n % 50}")
    assert worklist.query("sps").total == 50_000
