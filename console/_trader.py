"""The trader's pages: their own submissions, and per submission its timeline, release response and what
is still awaited from whom.

A trader signs in with the API key their declarations are lodged with (``console/_signin.py``) and sees
only the submissions lodged with a key of theirs: another trader's submission answers 404 exactly like
one that does not exist, so ids cannot be probed. Officers and operators get a 403 page here.

The data is the status view's: the list comes from its per-trader index (``broker/_trader_index.py``,
newest first, a page is a slice even with 100,000 submissions), a submission's page from
``render_timeline`` and the aggregator's state. What the page says is built by pure functions
(``marks_of``, ``awaited``, ``response_of``) and drawn by ``console/_timeline_svg.py``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from broker._aggregate import DOCUMENT_HOLDS, FINAL_STATUSES, pending_agencies
from broker._signing import ResponseSigner
from broker._view import Entry, StatusView, render_response, render_status, render_timeline
from console._app import SECURITY_HEADERS, Console
from console._principal import Principal
from console._timeline_svg import Mark, Tone, timeline_svg
from schemas import AgencyItemReason, ReleaseResponse, response_xml

__all__ = ["FUNCTION_MEANINGS", "PAGE_SIZE", "Awaited", "Row", "awaited", "marks_of", "routes", "row_of",
           "search", "submission_context"]

PAGE_SIZE: Final = 50
MAX_QUERY: Final = 100
#: The most matches a search by trader reference returns (a reference is meant to be nearly unique).
MAX_MATCHES: Final = 1000

#: WCO DM Response/FunctionCode as the hub uses it.
FUNCTION_MEANINGS: Final[dict[str, str]] = {"08": "released", "05": "held", "06": "documents required",
                                            "03": "refused", "10": "invalidated"}
FUNCTION_TONES: Final[dict[str, Tone]] = {"08": "ok", "05": "hold", "06": "hold", "03": "refuse", "10": "refuse"}
OUTCOME_TONES: Final[dict[str, Tone]] = {"RELEASE": "ok", "HOLD": "hold", "REFUSE": "refuse"}
STATUS_WORDS: Final[dict[str, str]] = {
    "accepted": "received, being routed", "routed": "awaiting agency decisions",
    "escalated": "awaiting overdue decisions", "released": "released", "held": "held", "refused": "refused",
    "cancelled": "cancelled"}

#: What the trader can do about each kind of hold.
HOLD_ACTIONS: Final[dict[str, str]] = {
    "DOCUMENTS_REQUIRED": "Present the documents the agency names: lodge an amendment that declares them "
                          "(or send them to the agency, quoting its reference).",
    "INSPECTION": "The goods must be presented for inspection: make them available to the agency at the "
                  "place of examination; the agency releases them after the inspection.",
    "IPR_SUSPENSION": "Release is suspended while the right holder is consulted; the agency decides when the "
                      "suspension ends or is extended. You may contact the agency, quoting its reference.",
    "LICENCE_REQUIRED": "A licence is required: obtain it and lodge an amendment that declares it.",
    "ESCALATED": "The agency's decision is overdue and was escalated; nothing is needed from you.",
    "OTHER": "Contact the agency, quoting its reference, to learn what it needs.",
}


# --------------------------------------------------------------------------- pure: what the pages say


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the trader's list."""

    submission_id: str
    trader_reference: str
    status: str
    version: int
    function_code: str
    response_version: int | None
    received_at: int


def reference_of(entry: Entry) -> str:
    state = entry.state
    if state is not None and state["plan"] is not None:
        return state["plan"]["trader_reference"]
    if state is not None and state["response"] is not None:
        return state["response"]["trader_reference"]
    return ""


def row_of(entry: Entry) -> Row:
    response = entry.state["response"] if entry.state is not None else None
    return Row(entry.submission_id, reference_of(entry), entry.status, entry.version,
               response["function_code"] if response else "", response["response_version"] if response else None,
               entry.received_at)


def search(view: StatusView, trader: str, query: str) -> list[Entry]:
    """The trader's submissions matching ``query``: its submission id exactly, or a trader reference that
    contains it (case-insensitive), newest first; another trader's submission never matches."""
    query = query.strip()[:MAX_QUERY]
    if not query:
        return []
    exact = view.get(query.upper())
    if exact is not None and exact.trader == trader:
        return [exact]
    wanted = query.casefold()
    found: list[Entry] = []
    for sid in view.by_trader.newest_first(trader):
        entry = view.get(sid)
        if entry is not None and wanted in reference_of(entry).casefold():
            found.append(entry)
            if len(found) >= MAX_MATCHES:
                break
    return found


def _ms(at: str | None) -> int | None:
    if at is None:
        return None
    return int(datetime.fromisoformat(at).timestamp() * 1000)


def lanes_of(entry: Entry) -> list[str]:
    """Trader, hub, then the agencies of the current routing plan (others join as their events appear)."""
    plan = entry.state["plan"] if entry.state is not None else None
    return ["trader", "hub", *(route["agency"] for route in (plan["agencies"] if plan else []))]


def marks_of(entry: Entry) -> list[Mark]:
    """The timeline's events as marks of the picture, in time order, worded for the trader."""
    decisions = entry.state["decisions"] if entry.state is not None else {}
    marks: list[Mark] = []
    for event in render_timeline(entry)["events"]:
        at, step, version = _ms(event.get("at")), str(event["step"]), int(event.get("version", 1))
        agency = str(event.get("agency") or "hub")
        detail = str(event.get("detail") or "")
        if step == "received":
            kind = detail.lower() if detail else "declaration"
            marks.append(Mark(at, "hub", step, f"received v{version}", f"version {version} ({kind}) received",
                              version, source="trader"))
        elif step == "validated":
            marks.append(Mark(at, "hub", step, "validated", "schema and rules checked", version))
        elif step == "routed":
            marks.append(Mark(at, "hub", step, "routed", f"to {detail}" if detail else "", version))
        elif step == "requested":
            marks.append(Mark(at, agency, step, "request sent", f"the hub asked {agency} to decide", version,
                              source="hub"))
        elif step == "carried_over":
            marks.append(Mark(at, agency, step, "carried over", detail, version))
        elif step == "decided":
            worst = "REFUSE" if "REFUSE" in detail else "HOLD" if "HOLD" in detail else "RELEASE"
            marks.append(Mark(at, agency, step, detail or "decided", _decision_detail(decisions.get(agency), at,
                                                                                      version), version,
                              OUTCOME_TONES[worst]))
        elif step == "escalated":
            marks.append(Mark(at, agency, step, "escalated", detail, version, "alert"))
        elif step == "responded":
            code = detail.partition(" ")[0]
            label = f"{code} {FUNCTION_MEANINGS.get(code, '')}".strip()
            marks.append(Mark(at, "trader", step, label, f"release response {detail}", version,
                              FUNCTION_TONES.get(code, "neutral"), source="hub"))
        elif step.startswith("webhook-"):
            status = step.removeprefix("webhook-")
            attempts = event.get("attempts")
            error = event.get("error")
            text = f"webhook {status} after {attempts} attempt(s)" + (f": {error}" if error else "")
            marks.append(Mark(at, "trader", "webhook", f"webhook {status}", text, version,
                              "ok" if status == "delivered" else "alert"))
        else:
            marks.append(Mark(at, agency, step, step.replace("_", " "), detail, version))
    return marks


def _decision_detail(decision: Mapping[str, Any] | None, at: int | None, version: int) -> str:
    """The agency's reasons, when the event is its decision that counts now."""
    if decision is None or decision.get("decided_at") != at or decision.get("version") != version:
        return ""
    reasons = "; ".join(f"item {i['sequence']}: {i['outcome']} {i['code']} {i['reason']}" for i in decision["items"])
    reference = decision.get("agency_reference")
    return f"{reasons}" + (f" (agency reference {reference})" if reference else "")


@dataclass(frozen=True, slots=True)
class Waiting:
    """An agency whose decision on the current version has not come."""

    agency: str
    requested_at: int | None
    due_at: int | None
    escalated_at: int | None


@dataclass(frozen=True, slots=True)
class Action:
    """An item held or refused, by whom, why, and what the trader can do."""

    sequence: int
    agency: str
    outcome: str
    code: str
    reason: str
    hold_reason: str
    todo: str
    agency_reference: str


@dataclass(slots=True)
class Awaited:
    """What is still awaited, from whom."""

    summary: str
    waiting: list[Waiting] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


def _hold_kind(reason: AgencyItemReason) -> str:
    given = reason.get("hold_reason")
    if given:
        return given
    return "DOCUMENTS_REQUIRED" if f"{reason['agency']}:{reason['code']}" in DOCUMENT_HOLDS else "OTHER"


def current_response(entry: Entry) -> ReleaseResponse | None:
    """The latest release response the trader was given (possibly for an earlier version)."""
    return entry.state["response"] if entry.state is not None else None


def awaited(entry: Entry, *, deadlines_ms: Mapping[str, int]) -> Awaited:
    state = entry.state
    if state is None or state["plan"] is None or entry.status == "accepted":
        return Awaited(f"The hub has received version {entry.version} and is validating and routing it; "
                       "nothing is needed from you.")
    plan = state["plan"]
    if entry.status == "cancelled":
        return Awaited("Nothing: the declaration was cancelled (response 10, invalidated).")
    requested = {e.get("agency"): e["at"] for e in state.get("timeline", [])
                 if e["step"] == "requested" and e["version"] == plan["version"]}
    escalations = state.get("escalations", {})
    waiting = [Waiting(agency, requested.get(agency, plan["routed_at"]),
                       escalations[agency]["deadline_at"] if agency in escalations
                       else (plan["routed_at"] + deadlines_ms[agency] if agency in deadlines_ms else None),
                       escalations[agency]["escalated_at"] if agency in escalations else None)
               for agency in pending_agencies(state)]
    actions: list[Action] = []
    response = state["response"]
    if response is not None and response["version"] == plan["version"] and not waiting:
        references = {a["agency"]: a.get("agency_reference") or "" for a in response["agencies"]}
        for item in response["items"]:
            for reason in item["reasons"]:
                if reason["outcome"] == "RELEASE":
                    continue
                kind = _hold_kind(reason) if reason["outcome"] == "HOLD" else ""
                todo = HOLD_ACTIONS.get(kind, HOLD_ACTIONS["OTHER"]) if kind else \
                    "Refused: these goods may not be released as declared; the agency's reason says why."
                actions.append(Action(item["sequence"], reason["agency"], reason["outcome"], reason["code"],
                                      reason["reason"], kind, todo, references.get(reason["agency"], "")))
    if waiting:
        names = ", ".join(w.agency for w in waiting)
        summary = f"Awaiting the decision of {names} on version {plan['version']}."
    elif entry.status == "released":
        summary = "Nothing: the goods are released."
    elif entry.status == "refused":
        summary = "Nothing can release the goods as declared: an agency refused them."
    elif actions:
        summary = "Held: see below what each agency needs."
    else:
        summary = f"Status {entry.status}."
    return Awaited(summary, waiting, actions)


def response_view(response: ReleaseResponse) -> dict[str, Any]:
    """The release response as the page shows it: function code with its meaning, agencies by name."""
    return {**response, "meaning": FUNCTION_MEANINGS.get(response["function_code"], "unknown code"),
            "tone": FUNCTION_TONES.get(response["function_code"], "neutral"),
            "by_agency": {a["agency"]: a for a in response["agencies"]}}


def picture(entry: Entry, marks: Sequence[Mark]) -> str:
    reference = reference_of(entry)
    title = f"Timeline of submission {entry.submission_id}" + (f" ({reference})" if reference else "")
    lanes = lanes_of(entry)
    known = [m.at for m in marks if m.at is not None]
    span = f" from {marks_span(known)}" if known else ""
    agencies = [lane for lane in dict.fromkeys([*lanes, *(m.lane for m in marks)]) if lane not in ("trader", "hub")]
    description = (f"{len(marks)} events{span}, in lanes for the trader, the hub and "
                   f"{', '.join(agencies) or 'no agency'}. Status: {STATUS_WORDS.get(entry.status, entry.status)}.")
    return timeline_svg(marks, lanes=lanes, title=title, description=description,
                        ident=f"tl-{entry.submission_id}")


def submission_context(entry: Entry, *, deadlines_ms: Mapping[str, int], signed: bool) -> dict[str, Any]:
    """What ``trader_submission.html`` shows of ``entry``."""
    marks = marks_of(entry)
    response = current_response(entry)
    return {"entry": entry, "reference": reference_of(entry), "status_words": STATUS_WORDS,
            "svg": picture(entry, marks), "marks": marks,
            "response": response_view(response) if response is not None else None,
            "response_is_current": response is not None and entry.status in FINAL_STATUSES,
            "awaited": awaited(entry, deadlines_ms=deadlines_ms), "signed": signed}


def marks_span(known: Iterable[int]) -> str:
    values = list(known)
    first, last = min(values), max(values)
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    return f"{time.strftime(fmt, time.gmtime(first / 1000))} to {time.strftime(fmt, time.gmtime(last / 1000))}"


# --------------------------------------------------------------------------- the routes

_SUBMISSION_ID: Final = re.compile(r"[0-9A-Za-z]{1,64}")


class _Pages:
    """The trader's routes; every one checks who is signed in, and that the submission is theirs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.view = console.deps.view

    def routes(self) -> list[BaseRoute]:
        base = "/trader/submissions/{submission_id}"
        return [Route("/trader", self.mine, methods=["GET"]),
                Route(base, self.submission, methods=["GET"]),
                Route(f"{base}/status.json", self.status_json, methods=["GET"]),
                Route(f"{base}/timeline.json", self.timeline_json, methods=["GET"]),
                Route(f"{base}/response.json", self.response_json, methods=["GET"]),
                Route(f"{base}/response.jws", self.response_jws, methods=["GET"]),
                Route(f"{base}/response.xml", self.response_xml, methods=["GET"])]

    @property
    def signer(self) -> ResponseSigner | None:
        signer = self.console.deps.extra.get("signer")
        return signer if isinstance(signer, ResponseSigner) else None

    def signed_in(self, request: Request) -> Principal | Response:
        principal = self.console.principal(request)
        if principal is None:
            return self.console.sign_in_redirect(request)
        if principal.kind != "trader":
            return self.console.error(request, 403, "These pages are for traders, signed in with their API key.")
        return principal

    def own(self, request: Request) -> Entry | Response:
        principal = self.signed_in(request)
        if isinstance(principal, Response):
            return principal
        sid = request.path_params["submission_id"]
        entry = self.view.get(sid) if _SUBMISSION_ID.fullmatch(sid) else None
        if entry is None or entry.trader != principal.subject:
            # The same answer for another trader's submission as for none: ids cannot be probed.
            return self.console.error(request, 404, f"You have no submission {sid[:64]}.")
        return entry

    async def mine(self, request: Request) -> Response:
        principal = self.signed_in(request)
        if isinstance(principal, Response):
            return principal
        query = request.query_params.get("q", "").strip()[:MAX_QUERY]
        try:
            page = max(int(request.query_params.get("page", "1")), 1)
        except ValueError:
            page = 1
        offset = (page - 1) * PAGE_SIZE
        trader, index = principal.subject, self.view.by_trader
        if query:
            found = search(self.view, trader, query)
            total, entries = len(found), found[offset:offset + PAGE_SIZE]
        else:
            total = index.count(trader)
            entries = [e for sid in index.page(trader, offset, PAGE_SIZE) if (e := self.view.get(sid)) is not None]
        return self.console.render(request, "trader_list.html", {
            "rows": [row_of(e) for e in entries], "query": query, "page": page, "total": total,
            "pages": max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1), "meanings": FUNCTION_MEANINGS,
            "status_words": STATUS_WORDS})

    async def submission(self, request: Request) -> Response:
        entry = self.own(request)
        if isinstance(entry, Response):
            return entry
        deadlines = self.console.deps.extra.get("deadlines_ms")
        return self.console.render(request, "trader_submission.html", submission_context(
            entry, deadlines_ms=deadlines if isinstance(deadlines, dict) else {}, signed=self.signer is not None))

    @staticmethod
    def _json(body: Any, headers: Mapping[str, str] | None = None) -> Response:
        return Response(orjson.dumps(body, option=orjson.OPT_INDENT_2), media_type="application/json",
                        headers={**SECURITY_HEADERS, **(headers or {})})

    async def status_json(self, request: Request) -> Response:
        entry = self.own(request)
        return entry if isinstance(entry, Response) else self._json(render_status(entry))

    async def timeline_json(self, request: Request) -> Response:
        entry = self.own(request)
        return entry if isinstance(entry, Response) else self._json(render_timeline(entry))

    def final_response(self, request: Request) -> ReleaseResponse | Response:
        entry = self.own(request)
        if isinstance(entry, Response):
            return entry
        response = current_response(entry)
        if response is None or entry.status not in FINAL_STATUSES:
            return self.console.error(request, 404, f"Submission {entry.submission_id} has no release response yet.")
        return response

    async def response_json(self, request: Request) -> Response:
        response = self.final_response(request)
        if isinstance(response, Response):
            return response
        rendered = render_response(response)
        signer = self.signer
        return self._json(rendered, {"NSW-Response-JWS": signer.sign(rendered)} if signer is not None else None)

    async def response_jws(self, request: Request) -> Response:
        response = self.final_response(request)
        if isinstance(response, Response):
            return response
        if self.signer is None:
            return self.console.error(request, 404, "This hub does not sign its responses.")
        return Response(self.signer.sign(render_response(response)), media_type="application/jose",
                        headers=SECURITY_HEADERS)

    async def response_xml(self, request: Request) -> Response:
        response = self.final_response(request)
        if isinstance(response, Response):
            return response
        name = f"{response['submission_id']}-v{response['version']}-r{response['response_version']}.xml"
        return Response(response_xml(response), media_type="application/xml",
                        headers={**SECURITY_HEADERS, "content-disposition": f'inline; filename="{name}"'})


def routes(console: Console) -> list[BaseRoute]:
    return _Pages(console).routes()
