"""The TRIPS Art. 55 clock of an IPR suspension, as pure functions over a JSON-shaped record.

Art. 55: if, within 10 working days after the applicant has been served notice of the suspension, customs has
not been informed that proceedings on the merits have been initiated (or that provisional measures prolong the
suspension), the goods shall be released, provided that all other conditions for importation or exportation
have been complied with; in appropriate cases the time-limit may be extended by another 10 working days.

So the timer **releases**, it does not escalate: holding goods past the time-limit without proceedings is what
Art. 55 forbids (and Art. 56 makes the applicant answer for). "All other conditions" are the other agencies'
business: the hub's aggregation keeps any other agency's hold or refusal, so the IPR release cannot release
goods another agency holds.

One record per submission (its latest IPR request): the latest decision of every item as the aggregator has it
(a decision replaces the agency's previous one as a whole, so a follow-up carries every item), and a clock per
suspended item. Follow-up decisions of an officer or a right holder's system, quoting the same request_id:
    H02  proceedings on the merits notified (or provisional measures): the clock stops, the goods stay suspended
         until the officer decides (release or refusal)
    H03  extension requested: the time-limit moves by another 10 working days, once; a second request leaves
         it where it is
    any RELEASE or REFUSE ends the item's clock.
The timer's own follow-up releases an item with code C04.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypedDict

from schemas import AgencyDecision, ItemDecision

SATURDAY = 5
PROCEEDINGS_WORKING_DAYS = 10
PROCEEDINGS_NOTIFIED = "H02"
EXTENSION = "H03"
TIME_LIMIT_RELEASE = "C04"
_DAY_MS = 24 * 3600 * 1000

ClockState = Literal["RUNNING", "PROCEEDINGS", "ENDED"]


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days (Mon-Fri) after ``start``; ``start`` itself is not counted.

    Public holidays are not modelled (a national calendar would be reference data of its own)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = start
    while days:
        current += timedelta(days=1)
        if current.weekday() < SATURDAY:
            days -= 1
    return current


def day_of(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def end_of(day: date) -> int:
    """Epoch ms of the midnight (UTC) that ends ``day``: the holder may still notify on ``day`` itself."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000) + _DAY_MS


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSettings:
    """How long the holder has. ``deadline_ms`` replaces the working-day time-limit by a fixed span after the
    suspension (drills and tests); ``valid_until`` stays the Art. 55 date either way."""

    working_days: int = PROCEEDINGS_WORKING_DAYS
    extension_working_days: int = PROCEEDINGS_WORKING_DAYS
    deadline_ms: int | None = None


class Clock(TypedDict):
    right_id: str
    brand: str
    holder_id: str
    holder_name: str
    contact: str
    suspended_at: int
    valid_until: str
    due_at: int
    extended: bool
    state: ClockState


class Suspensions(TypedDict):
    """The changelog record of one submission's IPR request (JSON)."""

    request_id: str
    submission_id: str
    version: int
    agency_reference: str | None
    items: list[ItemDecision]
    clocks: dict[str, Clock]  # by item sequence (JSON keys are strings)
    followups: int


@dataclass(frozen=True, slots=True)
class Suspended:
    """What the engine found for one suspended item (the right and the holder to notify)."""

    sequence: int
    right_id: str
    brand: str
    holder_id: str
    holder_name: str
    contact: str


def open_suspensions(decision: AgencyDecision, suspended: Sequence[Suspended], *, now: int,
                     settings: ClockSettings) -> Suspensions | None:
    """The record to keep after the engine's first decision; None when nothing was suspended."""
    clocks: dict[str, Clock] = {}
    by_seq = {item["sequence"]: item for item in decision["items"]}
    for found in suspended:
        valid_until = by_seq[found.sequence]["valid_until"]
        if valid_until is None:
            continue
        until = date.fromisoformat(valid_until)
        due = now + settings.deadline_ms if settings.deadline_ms is not None else end_of(until)
        clocks[str(found.sequence)] = {
            "right_id": found.right_id, "brand": found.brand, "holder_id": found.holder_id,
            "holder_name": found.holder_name, "contact": found.contact, "suspended_at": now,
            "valid_until": until.isoformat(), "due_at": due, "extended": False, "state": "RUNNING"}
    if not clocks:
        return None
    return {"request_id": decision.get("request_id") or "", "submission_id": decision["submission_id"],
            "version": decision["version"], "agency_reference": decision.get("agency_reference"),
            "items": [ItemDecision(**item) for item in decision["items"]], "clocks": clocks, "followups": 0}


def next_due(record: Suspensions) -> int | None:
    """When the timer next needs ``record``: the earliest time-limit of a running clock (None: none runs)."""
    return min((clock["due_at"] for clock in record["clocks"].values() if clock["state"] == "RUNNING"), default=None)


def running(record: Suspensions) -> bool:
    """Does the timer still care about this record?"""
    return any(clock["state"] == "RUNNING" for clock in record["clocks"].values())


def due(record: Suspensions, *, now: int) -> AgencyDecision | None:
    """The timer's follow-up decision when a time-limit has passed (and ``record`` updated), else None."""
    ended = {seq: clock for seq, clock in record["clocks"].items()
             if clock["state"] == "RUNNING" and now >= clock["due_at"]}
    if not ended:
        return None
    items: list[ItemDecision] = []
    for item in record["items"]:
        clock = ended.get(str(item["sequence"]))
        if clock is None:
            items.append(item)
            continue
        clock["state"] = "ENDED"
        items.append({"sequence": item["sequence"], "outcome": "RELEASE", "code": TIME_LIMIT_RELEASE,
                      "reason": f"TRIPS Art. 55: {clock['holder_name']} did not notify proceedings for "
                                f"{clock['brand']} ({clock['right_id']}) by {clock['valid_until']}; the suspension "
                                "ends and the goods are released as far as IPR enforcement is concerned.",
                      "hold_reason": None, "valid_until": None})
    record["items"] = items
    record["followups"] += 1
    return {"decision_id": f"{record['request_id']}:art55:{record['followups']}",
            "submission_id": record["submission_id"], "version": record["version"], "agency": "ipr",
            "decided_at": now, "items": [ItemDecision(**i) for i in items],
            "agency_reference": record["agency_reference"], "request_id": record["request_id"]}


def settled(record: Suspensions) -> bool:
    """Every clock ended (released by the timer, or decided by an officer): nothing left to keep."""
    return all(clock["state"] == "ENDED" for clock in record["clocks"].values())


def follow_up(record: Suspensions, decision: AgencyDecision, *, now: int, settings: ClockSettings) -> list[str]:
    """Take an officer's or right holder's decision on the same request into ``record``; what changed, in words
    (for the log), empty when the decision is not about this record."""
    if decision.get("request_id") != record["request_id"]:
        return []
    changes: list[str] = []
    by_seq = {item["sequence"]: item for item in decision["items"]}
    record["items"] = [by_seq.get(item["sequence"], item) for item in record["items"]]
    for seq, item in by_seq.items():
        clock = record["clocks"].get(str(seq))
        if clock is None or clock["state"] == "ENDED":
            continue
        if item["outcome"] != "HOLD":
            clock["state"] = "ENDED"
            changes.append(f"{seq}:ended")
        elif item["code"] == PROCEEDINGS_NOTIFIED:
            clock["state"] = "PROCEEDINGS"
            changes.append(f"{seq}:proceedings")
        elif item["code"] == EXTENSION and clock["state"] == "RUNNING":
            if clock["extended"]:
                changes.append(f"{seq}:extension-refused")
                continue
            until = add_working_days(date.fromisoformat(clock["valid_until"]), settings.extension_working_days)
            clock["valid_until"], clock["extended"] = until.isoformat(), True
            clock["due_at"] = now + settings.deadline_ms if settings.deadline_ms is not None else end_of(until)
            changes.append(f"{seq}:extended:{until.isoformat()}")
    return changes


def notification(record: Suspensions, seq: str, *, settings: ClockSettings) -> dict[str, Any]:
    """The right holder's notice of a suspension (JSON on ``nsw.ipr.notifications``): which right, which goods
    (submission and item, never the declaration's other data), and the Art. 55 time-limit."""
    clock = record["clocks"][seq]
    until = date.fromisoformat(clock["valid_until"])
    return {"notification_id": f"{record['request_id']}:notice:{seq}", "kind": "SUSPENSION",
            "submission_id": record["submission_id"], "version": record["version"],
            "request_id": record["request_id"], "agency_reference": record["agency_reference"],
            "item": int(seq), "right_id": clock["right_id"], "brand": clock["brand"],
            "holder_id": clock["holder_id"], "holder_name": clock["holder_name"], "contact": clock["contact"],
            "suspended_at": clock["suspended_at"], "deadline": clock["valid_until"],
            "extendable_to": add_working_days(until, settings.extension_working_days).isoformat(),
            "legal_basis": "TRIPS Art. 54 (notice of suspension) and Art. 55 (duration of suspension)"}
