"""The officer's worklist: the held and escalated work of each agency, nearest to its deadline first.

Pure and incremental: ``Worklist.update`` takes a submission's aggregator state whenever it changes (the
status view calls it), ``learn_request`` what the agency was asked (items, origin, commodity codes, from
the agency's request topic), and ``query`` answers one page. Each agency's open items are kept in a sorted
list of (due, received, submission) keys, so a page is a walk from a cursor, whatever the number of open
items; counts per filter value (lane, reason, origin, HS chapter, trader) are kept as items come and go.

A work item is open for an agency when, on the submission's current version, the agency
- holds items (its decision's HOLD items): due when the agency's review time after its decision has
  passed, or at the end of the hold's ``valid_until`` day (an IPR suspension's proceedings deadline) if earlier;
- or was escalated (no decision by its deadline): due at that deadline, so it is overdue at once.
A refused or cancelled declaration opens no work: nothing can release it until the trader amends it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import orjson

from broker._aggregate import AggregateState
from schemas import AgencyDecision, AgencyRoute

__all__ = ["FILTERS", "Filters", "Page", "RequestSummary", "WorkItem", "Worklist", "open_work", "settled"]

FILTERS: Final = ("lane", "reason", "origin", "chapter", "trader")
#: Customs lanes from its decision codes (adapters/customs/_engine.py); other agencies' holds take a lane from
#: their hold reason.
CUSTOMS_LANES: Final = {"H01": "red", "H02": "yellow", "H03": "random"}
REASON_LANES: Final = {"INSPECTION": "red", "DOCUMENTS_REQUIRED": "yellow"}
DEFAULT_REVIEW_MS: Final = 24 * 3600 * 1000

Key = tuple[int, int, str]


def settled(state: AggregateState | None, version: int) -> bool:
    """Whether a request of ``version`` can open no work: its submission is decided at that version or a later
    one with nothing left to do."""
    return state is not None and state["status"] in ("released", "refused", "cancelled") and state["version"] >= version


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """What the worklist shows of an agency's request, and where the whole request is on Kafka."""

    version: int
    request_id: str
    items: tuple[tuple[int, str, str, str], ...]  # (sequence, commodity code, origin, description)
    topic: str
    partition: int
    offset: int

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(origin for _, _, origin, _ in self.items if origin)

    @property
    def chapters(self) -> frozenset[str]:
        return frozenset(code[:2] for _, code, _, _ in self.items if len(code) >= 2 and code[:2].isdigit())


@dataclass(frozen=True, slots=True)
class WorkItem:
    agency: str
    submission_id: str
    version: int
    trader: str
    trader_reference: str
    received_at: int
    state: Literal["held", "escalated"]
    due_at: int
    lanes: tuple[str, ...]
    reasons: tuple[str, ...]  # hold reasons (INSPECTION, ...) or ESCALATED
    held_items: tuple[int, ...]
    codes: tuple[str, ...]
    decided_at: int | None
    origins: frozenset[str] = frozenset()
    chapters: frozenset[str] = frozenset()

    @property
    def key(self) -> Key:
        return (self.due_at, self.received_at, self.submission_id)

    def values(self, name: str) -> frozenset[str]:
        """The item's values for a filter (an item matches when the filter's value is among them)."""
        if name == "lane":
            return frozenset(self.lanes)
        if name == "reason":
            return frozenset(self.reasons)
        if name == "origin":
            return self.origins
        if name == "chapter":
            return self.chapters
        return frozenset({self.trader})


@dataclass(frozen=True, slots=True)
class Filters:
    lane: str = ""
    reason: str = ""
    origin: str = ""
    chapter: str = ""
    trader: str = ""

    def active(self) -> dict[str, str]:
        return {name: value for name in FILTERS if (value := getattr(self, name))}

    def match(self, item: WorkItem) -> bool:
        return all(value in item.values(name) for name, value in self.active().items())


@dataclass(frozen=True, slots=True)
class Page:
    items: list[WorkItem]
    total: int  # open items of the agency matching the filters
    next_cursor: str | None
    facets: dict[str, list[tuple[str, int]]]  # per filter, its values and how many open items have each


def _end_of_day_ms(day: str) -> int | None:
    try:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    except ValueError:
        return None
    return int((start + timedelta(days=1)).timestamp() * 1000) - 1


def _route(state: AggregateState, agency: str) -> AgencyRoute | None:
    plan = state["plan"]
    return next((r for r in plan["agencies"] if r["agency"] == agency), None) if plan else None


def _counts(state: AggregateState, route: AgencyRoute, decision: AgencyDecision) -> bool:
    plan = state["plan"]
    assert plan is not None
    carried = route.get("carried_from_version")
    return decision["version"] == (carried if carried is not None else plan["version"])


def open_work(state: AggregateState, *, trader: str, review_ms: Mapping[str, int]) -> dict[str, WorkItem]:
    """The work items a submission's state opens, per agency: none before routing, and none once the declaration
    is cancelled or refused (an agency's refusal stands until the trader amends: nothing another agency decides
    can release the goods, so its holds are not work)."""
    plan = state["plan"]
    if plan is None or state["status"] in ("cancelled", "refused"):
        return {}
    found: dict[str, WorkItem] = {}
    escalations = state.get("escalations", {})
    base = {"submission_id": state["submission_id"], "version": plan["version"], "trader": trader,
            "trader_reference": plan["trader_reference"], "received_at": plan["received_at"]}
    for route in plan["agencies"]:
        agency = route["agency"]
        if agency in escalations:
            asked = tuple(sorted({r["item"] for r in route["reasons"]}))
            found[agency] = WorkItem(agency=agency, state="escalated", due_at=escalations[agency]["deadline_at"],
                                     lanes=("escalated",), reasons=("ESCALATED",), held_items=asked, codes=(),
                                     decided_at=None, **base)  # type: ignore[arg-type]
            continue
        decision = state["decisions"].get(agency)
        if decision is None or not _counts(state, route, decision):
            continue
        held = [i for i in decision["items"] if i["outcome"] == "HOLD"]
        if not held:
            continue
        due = decision["decided_at"] + review_ms.get(agency, DEFAULT_REVIEW_MS)
        for item in held:
            until = _end_of_day_ms(item.get("valid_until") or "")
            if until is not None:
                due = min(due, until)
        reasons = tuple(sorted({i.get("hold_reason") or "OTHER" for i in held}))
        lanes = tuple(sorted({CUSTOMS_LANES.get(i["code"], "") if agency == "customs" else
                              REASON_LANES.get(i.get("hold_reason") or "", "hold") for i in held} - {""}))
        found[agency] = WorkItem(agency=agency, state="held", due_at=due, lanes=lanes or ("hold",), reasons=reasons,
                                 held_items=tuple(i["sequence"] for i in held),
                                 codes=tuple(sorted({i["code"] for i in held})), decided_at=decision["decided_at"],
                                 **base)  # type: ignore[arg-type]
    return found


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key | None:
    try:
        due, received, sid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if not isinstance(due, int) or not isinstance(received, int) or not isinstance(sid, str):
        return None
    return (due, received, sid)


@dataclass(slots=True)
class _AgencyList:
    items: dict[str, WorkItem] = field(default_factory=dict)
    order: list[Key] = field(default_factory=list)
    #: Per filter and value, the submissions with it (a filtered page intersects these, smallest first).
    index: dict[str, dict[str, set[str]]] = field(default_factory=lambda: {name: {} for name in FILTERS})

    @property
    def facets(self) -> dict[str, Counter[str]]:
        return {name: Counter({value: len(sids) for value, sids in values.items()})
                for name, values in self.index.items()}

    def add(self, item: WorkItem) -> None:
        self.items[item.submission_id] = item
        bisect.insort(self.order, item.key)
        for name in FILTERS:
            for value in item.values(name):
                self.index[name].setdefault(value, set()).add(item.submission_id)

    def matching(self, filters: Filters, after: Key | None, limit: int) -> tuple[list[WorkItem], int]:
        """Up to ``limit`` items after ``after`` with every active filter's value, in worklist order, and how
        many match in all: a few matches are sorted, many are found walking the order."""
        sets = sorted((self.index[name].get(value, set()) for name, value in filters.active().items()), key=len)
        found = set(sets[0]).intersection(*sets[1:]) if sets else set(self.items)
        if len(found) * 8 < len(self.items):
            ordered = sorted((self.items[sid] for sid in found), key=lambda item: item.key)
            start = bisect.bisect_right([i.key for i in ordered], after) if after is not None else 0
            return ordered[start:start + limit], len(found)
        page: list[WorkItem] = []
        start = bisect.bisect_right(self.order, after) if after is not None else 0
        for key in itertools.islice(self.order, start, None):
            if key[2] in found:
                page.append(self.items[key[2]])
                if len(page) >= limit:
                    break
        return page, len(found)

    def remove(self, submission_id: str) -> WorkItem | None:
        item = self.items.pop(submission_id, None)
        if item is None:
            return None
        at = bisect.bisect_left(self.order, item.key)
        if at < len(self.order) and self.order[at] == item.key:
            del self.order[at]
        for name in FILTERS:
            values = self.index[name]
            for value in item.values(name):
                sids = values.get(value)
                if sids is not None:
                    sids.discard(submission_id)
                    if not sids:
                        del values[value]
        return item

    def walk(self, after: Key | None) -> Iterator[WorkItem]:
        start = bisect.bisect_right(self.order, after) if after is not None else 0
        for key in self.order[start:]:
            yield self.items[key[2]]


class Worklist:
    def __init__(self, *, review_ms: Mapping[str, int]) -> None:
        self._review_ms = dict(review_ms)
        self._lists: dict[str, _AgencyList] = {}
        #: (agency, submission id) -> the latest request's summary, while its work may still open.
        self._requests: dict[tuple[str, str], RequestSummary] = {}
        self._states: dict[str, tuple[AggregateState, str]] = {}

    def _list(self, agency: str) -> _AgencyList:
        return self._lists.setdefault(agency, _AgencyList())

    def __len__(self) -> int:
        return sum(len(x.items) for x in self._lists.values())

    def sizes(self) -> dict[str, int]:
        """Entries per structure (the memory diagnostic)."""
        return {"items": len(self), "requests": len(self._requests)}

    def open_count(self, agency: str) -> int:
        return len(self._lists[agency].items) if agency in self._lists else 0

    def update(self, state: AggregateState, *, trader: str) -> None:
        """A submission's state changed: open, move or close its work items."""
        sid = state["submission_id"]
        opened = open_work(state, trader=trader, review_ms=self._review_ms)
        for agency, work in self._lists.items():
            if agency not in opened:
                work.remove(sid)
        for agency, opened_item in opened.items():
            summary = self._requests.get((agency, sid))
            fitting = summary is not None and summary.version == opened_item.version
            work = self._list(agency)
            work.remove(sid)
            work.add(_with_summary(opened_item, summary) if summary is not None and fitting else opened_item)
        self._forget_closed(state, opened)

    def _forget_closed(self, state: AggregateState, opened: Mapping[str, WorkItem]) -> None:
        """Request summaries are kept only while work may still open: not for a final state that holds nothing."""
        if state["status"] not in ("released", "refused", "cancelled", "held"):
            return
        sid = state["submission_id"]
        plan = state["plan"]
        for route in plan["agencies"] if plan else []:
            key = (route["agency"], sid)
            if route["agency"] not in opened and key in self._requests \
                    and self._requests[key].version <= state["version"]:
                del self._requests[key]

    def learn_request(self, agency: str, submission_id: str, summary: RequestSummary, *,
                      state: AggregateState | None, trader: str) -> None:
        """What ``agency`` was asked about ``submission_id`` (read from its request topic, in any order with the
        states); ``state`` is the submission's current state if known."""
        known = self._requests.get((agency, submission_id))
        if known is not None and known.version > summary.version:
            return
        if settled(state, summary.version):
            return  # decided with nothing left to do: no work will open for it
        self._requests[(agency, submission_id)] = summary
        work = self._lists.get(agency)
        item = work.items.get(submission_id) if work is not None else None
        if work is not None and item is not None and item.version == summary.version:
            work.remove(submission_id)
            work.add(_with_summary(item, summary))

    def request(self, agency: str, submission_id: str) -> RequestSummary | None:
        return self._requests.get((agency, submission_id))

    def get(self, agency: str, submission_id: str) -> WorkItem | None:
        work = self._lists.get(agency)
        return work.items.get(submission_id) if work is not None else None

    def query(self, agency: str, filters: Filters = Filters(), *, after: str | None = None,
              limit: int = 50, search: str = "") -> Page:
        """One page of ``agency``'s open items matching ``filters`` after the cursor ``after``; ``search`` (a
        submission id or a trader reference) finds the items it names instead."""
        work = self._lists.get(agency) or _AgencyList()
        if search:
            found = [work.items[search]] if search in work.items else \
                [i for i in work.walk(None) if i.trader_reference == search]
            facets = {name: sorted(c.items(), key=lambda kv: (-kv[1], kv[0])) for name, c in work.facets.items()}
            return Page(found[:limit], len(found), None, facets)
        cursor = decode_cursor(after) if after else None
        facets = {name: sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) for name, counter in
                  work.facets.items()}
        active = filters.active()
        if not active:
            total = len(work.items)
            items = []
            for item in work.walk(cursor):
                items.append(item)
                if len(items) > limit:
                    break
        else:
            items, total = work.matching(filters, cursor, limit + 1)
        more = len(items) > limit
        page = items[:limit]
        return Page(page, total, encode_cursor(page[-1].key) if more and page else None, facets)


def _with_summary(item: WorkItem, summary: RequestSummary) -> WorkItem:
    held = set(item.held_items)
    mine = [i for i in summary.items if i[0] in held] or list(summary.items)
    origins = frozenset(origin for _, _, origin, _ in mine if origin)
    chapters = frozenset(code[:2] for _, code, _, _ in mine if len(code) >= 2 and code[:2].isdigit())
    return dataclasses.replace(item, origins=origins, chapters=chapters)
