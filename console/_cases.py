"""The officer's pages: the worklist of the agency, a case, and the actions that decide it.

Only agency staff (officers and supervisors) see them, and only their own agency's work: a case of a
submission the agency was not asked about is "not found" for them, whatever its id. An action is a decision
of the officer's agency sent through the agency callback's checks (``DecisionCallback.submit``): it must
answer the outstanding request, so the aggregator issues the trader's next release response from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from adapters import FeedbackRecordError, inspection_message, inspection_result
from broker._aggregate import AggregateState
from broker._clock import now_ms
from broker._view import render_timeline
from broker.errors import TransportError
from console._actions import ActionError, officer_decision
from console._app import PREFIX, Console, FormError
from console._principal import Principal
from console._workbench import Workbench
from console._worklist import FILTERS, Filters, WorkItem
from refdata import officer_actions
from schemas import InspectionResult

log = structlog.get_logger("nsw.console")

__all__ = ["routes"]

PAGE_SIZE: Final = 50
DONE: Final = {"release": "Released: the decision is on its way to the trader's next release response.",
               "refuse": "Refused: the decision is on its way to the trader's next release response.",
               "documents": "Documents requested: the trader's next release response asks for them.",
               "extend": "Suspension extended: the right holder's time-limit moved by ten working days.",
               "proceedings": "Proceedings noted: the goods stay suspended until you decide.",
               "inspection": "Inspection result recorded."}


def _staff(console: Console, request: Request) -> Principal | Response:
    principal = console.principal(request)
    if principal is None:
        return console.sign_in_redirect(request)
    if not principal.is_agency_staff:
        return console.error(request, 403, "The worklist is for agency officers and supervisors.")
    return principal


def routes(console: Console) -> list[BaseRoute]:
    if console.deps.workbench is None:
        return []
    pages = _CasePages(console, console.deps.workbench)
    return [Route("/worklist", pages.worklist, methods=["GET"]),
            Route("/cases/{sid}", pages.case, methods=["GET"]),
            Route("/cases/{sid}/decide", pages.decide, methods=["POST"]),
            Route("/cases/{sid}/inspection", pages.inspection, methods=["POST"])]


class _CasePages:
    def __init__(self, console: Console, bench: Workbench) -> None:
        self.console = console
        self.bench = bench

    async def worklist(self, request: Request) -> Response:
        principal = _staff(self.console, request)
        if isinstance(principal, Response):
            return principal
        agency = principal.agency or ""
        q = request.query_params
        filters = Filters(**{name: q.get(name, "")[:64] for name in FILTERS})
        search = q.get("q", "").strip()[:80]
        page = self.bench.worklist.query(agency, filters, after=q.get("after") or None, limit=PAGE_SIZE, search=search)
        now = now_ms()
        rows = [{"item": item, "left": item.due_at - now} for item in page.items]
        base = filters.active()
        return self.console.render(request, "worklist.html", {
            "agency": agency, "rows": rows, "page": page, "filters": filters, "active": base,
            "filter_names": FILTERS, "after": q.get("after", ""), "search": search,
            "next_query": {**base, "after": page.next_cursor} if page.next_cursor else None})

    async def case(self, request: Request) -> Response:
        principal = _staff(self.console, request)
        if isinstance(principal, Response):
            return principal
        context = await _case_context(self.console, self.bench, principal, request.path_params["sid"])
        if context is None:
            return self.console.error(request, 404, "No case of your agency has this submission id.")
        done = request.query_params.get("done", "")
        context["done"] = DONE.get(done, "")
        return self.console.render(request, "case.html", context)

    async def _posted(self, request: Request) -> tuple[Principal, dict[str, str], AggregateState] | Response:
        """Who posted a case's form, its checked fields and the case's state; else the answer to give."""
        principal = _staff(self.console, request)
        if isinstance(principal, Response):
            return principal
        try:
            fields = await self.console.form(request, principal)
        except FormError as exc:
            return self.console.error(request, exc.status, exc.message)
        entry = self.console.deps.view.get(request.path_params["sid"])
        if entry is None or entry.state is None or not _asked(entry.state, principal.agency or ""):
            return self.console.error(request, 404, "No case of your agency has this submission id.")
        return principal, fields, entry.state

    async def decide(self, request: Request) -> Response:
        opened = await self._posted(request)
        if isinstance(opened, Response):
            return opened
        principal, fields, state = opened
        sid, agency = state["submission_id"], principal.agency or ""
        action = fields.get("action", "")
        try:
            items = [int(x) for x in fields.get("item", "").split(",") if x.strip()]
        except ValueError:
            return self.console.error(request, 400, "the items chosen are not item numbers")
        try:
            decision = officer_decision(state, agency=agency, action=action, items=items,
                                        officer=principal.actor, now=now_ms(), today=datetime.now(UTC).date(),
                                        reason_code=fields.get("reason_code", ""), note=fields.get("note", ""))
        except ActionError as exc:
            context = await _case_context(self.console, self.bench, principal, sid) or {}
            context.update(error=exc.message, error_field=exc.field, done="")
            return self.console.render(request, "case.html", context, status=422)
        decisions = self.console.deps.decisions
        assert decisions is not None
        try:
            refusal = await decisions.submit(decision)
        except TransportError:
            return self.console.error(request, 503, "Kafka did not take the decision; nothing was sent. Try again.")
        if refusal is not None:
            context = await _case_context(self.console, self.bench, principal, sid) or {}
            context.update(error=f"The hub refused the decision: {refusal.message}", error_field="", done="")
            return self.console.render(request, "case.html", context, status=409)
        log.info("console_decision", officer=principal.actor, action=action, items=len(decision["items"]))
        return RedirectResponse(f"{PREFIX}/cases/{sid}?done={action}", status_code=303)

    async def inspection(self, request: Request) -> Response:
        opened = await self._posted(request)
        if isinstance(opened, Response):
            return opened
        principal, fields, state = opened
        sid, agency = state["submission_id"], principal.agency or ""
        try:
            result = inspection_of(state, agency=agency, fields=fields, officer=principal.actor, now=now_ms(),
                                   lanes=self.bench.worklist.get(agency, sid))
        except (ActionError, FeedbackRecordError) as exc:
            context = await _case_context(self.console, self.bench, principal, sid) or {}
            context.update(error=f"The inspection result cannot be recorded: {exc}", error_field="", done="")
            return self.console.render(request, "case.html", context, status=422)
        try:
            await self.console.deps.publish(inspection_message(result))
        except TransportError:
            return self.console.error(request, 503, "Kafka did not take the inspection result; nothing was recorded.")
        log.info("console_inspection", officer=principal.actor, finding=result["finding"], items=len(result["items"]))
        return RedirectResponse(f"{PREFIX}/cases/{sid}?done=inspection", status_code=303)


def inspection_of(state: Any, *, agency: str, fields: dict[str, str], officer: str, now: int,
                  lanes: WorkItem | None) -> InspectionResult:
    """The inspection result an officer's form records: the items inspected, what selected them (the agency's
    decision's ``selected_by``, the routing rules) and the lane, so hit rates can be counted per profile and rule."""
    plan = state["plan"]
    route = next(r for r in plan["agencies"] if r["agency"] == agency)
    asked = {r["item"] for r in route["reasons"]}
    try:
        items = sorted({int(x) for x in fields.get("item", "").split(",") if x.strip()})
    except ValueError:
        raise ActionError("the items chosen are not item numbers", "items") from None
    if not items:
        raise ActionError("choose the items inspected", "items")
    if not set(items) <= asked:
        raise ActionError(f"item {min(set(items) - asked)} was not in the request to {agency}", "items")
    decision = state["decisions"].get(agency)
    selected = sorted({i for item in (decision["items"] if decision else []) if item["sequence"] in items
                       for i in item.get("selected_by", [])})
    rules = sorted({r["rule"] for r in route["reasons"] if r["item"] in items})
    performed = fields.get("performed", "yes") == "yes"
    finding = fields.get("finding", "no") == "yes"
    carried = route.get("carried_from_version")
    lane = next((name for name in (lanes.lanes if lanes else ()) if name in ("red", "yellow", "blue", "green")), "")
    return inspection_result(
        agency=agency, submission_id=state["submission_id"],
        version=carried if carried is not None else plan["version"], request_id=route.get("request_id") or "-",
        items=items, performed=performed, finding=finding, officer=officer, recorded_at=now,
        finding_code=fields.get("finding_code", "") if finding else "", note=" ".join(fields.get("note", "").split()),
        selected_by=selected, rules=rules, lane=lane)


def _asked(state: Any, agency: str) -> bool:
    plan = state["plan"]
    return plan is not None and any(r["agency"] == agency for r in plan["agencies"])


async def _case_context(console: Console, bench: Workbench, principal: Principal, sid: str) -> dict[str, Any] | None:
    entry = console.deps.view.get(sid)
    agency = principal.agency or ""
    if entry is None or entry.state is None or not _asked(entry.state, agency):
        return None
    state = entry.state
    plan = state["plan"]
    assert plan is not None
    route = next(r for r in plan["agencies"] if r["agency"] == agency)
    decision = state["decisions"].get(agency)
    request = await bench.full_request(agency, sid)
    item_decisions = {i["sequence"]: i for i in decision["items"]} if decision else {}
    reasons_by_item: dict[int, list[dict[str, Any]]] = {}
    for reason in route["reasons"]:
        reasons_by_item.setdefault(reason["item"], []).append(dict(reason))
    items = []
    for seq in sorted(reasons_by_item):
        data = next((i for i in request["items"] if i["sequence"] == seq), None) if request else None
        items.append({"sequence": seq, "data": data, "decision": item_decisions.get(seq),
                      "routing": reasons_by_item[seq]})
    work = bench.worklist.get(agency, sid)
    timeline = [e for e in render_timeline(entry)["events"] if e.get("agency") in (None, agency)]
    others = [{"agency": a, "outcome": _outcome(d["items"])} for a, d in sorted(state["decisions"].items())
              if a != agency]
    actions = officer_actions().of(agency)
    return {
        "sid": sid, "entry": entry, "state": state, "plan": plan, "agency": agency, "route": route,
        "decision": decision, "request": request, "items": items, "work": work,
        "left": work.due_at - now_ms() if work else None, "timeline": timeline, "others": others,
        "actions": actions, "held": [seq for seq, d in item_decisions.items() if d["outcome"] == "HOLD"],
        "ipr": actions.extension is not None, "error": "", "error_field": "",
        "response": state["response"],
    }


def _outcome(items: list[Any]) -> str:
    outcomes = {i["outcome"] for i in items}
    return "REFUSE" if "REFUSE" in outcomes else "HOLD" if "HOLD" in outcomes else "RELEASE"
