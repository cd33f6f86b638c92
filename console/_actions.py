"""An officer's action on a case as the agency decision it becomes (pure).

The decision answers the agency's outstanding request (its ``request_id``, the version the agency was asked
about) and replaces the agency's previous decision as a whole, as any agency's follow-up does: the items the
officer acted on get the new outcome, every other item keeps the agency's current decision. The codes and
texts come from ``refdata/officer-actions.json``; the officer's note is appended to the reason the trader reads.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from adapters.ipr._clock import add_working_days
from broker._aggregate import AggregateState
from errors import NSWError
from refdata import CodedText, officer_actions
from refdata._officer_actions import AgencyActions
from schemas import AgencyDecision, ItemDecision

__all__ = ["ACTIONS", "Action", "ActionError", "officer_decision"]

Action = Literal["release", "refuse", "documents", "extend", "proceedings"]
ACTIONS: Final[tuple[Action, ...]] = ("release", "refuse", "documents", "extend", "proceedings")
MAX_NOTE: Final = 500


@dataclass(frozen=True, slots=True)
class ActionError(NSWError, ValueError):
    """Why the action cannot be taken, for the officer (and the field it is about)."""

    message: str
    field: str = ""

    def __str__(self) -> str:
        return self.message


def _reason(text: str, note: str) -> str:
    return f"{text}. {note}" if note else text


def officer_decision(state: AggregateState, *, agency: str, action: str, items: Sequence[int], officer: str,
                     now: int, today: date, reason_code: str = "", note: str = "") -> AgencyDecision:
    """The decision ``officer`` of ``agency`` makes on ``items`` (empty: every held item) with ``action``."""
    if action not in ACTIONS:
        raise ActionError(f"no action {action!r}", "action")
    note = " ".join(note.split())
    if len(note) > MAX_NOTE:
        raise ActionError(f"the note has {len(note)} characters; at most {MAX_NOTE}", "note")
    plan = state["plan"]
    route = next((r for r in plan["agencies"] if r["agency"] == agency), None) if plan else None
    if plan is None or route is None:
        raise ActionError(f"{agency} was not asked about this submission")
    if state["status"] == "cancelled":
        raise ActionError("the declaration was cancelled")
    asked = sorted({r["item"] for r in route["reasons"]})
    carried = route.get("carried_from_version")
    version = carried if carried is not None else plan["version"]
    current = state["decisions"].get(agency)
    if current is not None and current["version"] != version:
        current = None
    previous: dict[int, ItemDecision] = {i["sequence"]: i for i in current["items"]} if current else {}
    held = [seq for seq in asked if seq not in previous or previous[seq]["outcome"] == "HOLD"]
    chosen = sorted(set(items)) if items else held
    unknown = [seq for seq in chosen if seq not in asked]
    if unknown:
        raise ActionError(f"item {unknown[0]} was not in the request to {agency}", "items")
    if not chosen:
        raise ActionError("nothing is held: choose the items to act on", "items")
    actions = officer_actions().of(agency)
    decided = {seq: _decide(action, seq, previous.get(seq), actions, reason_code=reason_code, note=note, today=today,
                            agency=agency) for seq in chosen}
    request_id = route.get("request_id") or ""
    return {
        "decision_id": f"{request_id}:console:{secrets.token_hex(6)}",
        "submission_id": state["submission_id"],
        "version": version,
        "agency": agency,
        "decided_at": now,
        "items": [decided.get(seq) or previous.get(seq) or _still_held(seq) for seq in asked],
        "agency_reference": current.get("agency_reference") if current else None,
        "request_id": request_id or None,
        "decided_by": officer,
    }


def _decide(action: str, seq: int, before: ItemDecision | None, actions: AgencyActions, *, reason_code: str,
            note: str, today: date, agency: str) -> ItemDecision:
    if action == "release":
        return _item(seq, "RELEASE", actions.release.code, _reason(actions.release.text, note))
    if action == "refuse":
        refusal = actions.refusal(reason_code)
        if refusal is None:
            raise ActionError(f"choose a refusal reason of {agency} (not {reason_code!r})", "reason_code")
        return _item(seq, "REFUSE", refusal.code, _reason(refusal.text, note))
    if action == "documents":
        if not note:
            raise ActionError("say which documents are required", "note")
        return _item(seq, "HOLD", actions.documents.code, _reason(actions.documents.text, note),
                     hold_reason="DOCUMENTS_REQUIRED")
    return _ipr_follow_up(action, seq, before, actions.extension if action == "extend" else actions.proceedings,
                          note=note, today=today)


def _ipr_follow_up(action: str, seq: int, before: ItemDecision | None, coded: CodedText | None, *, note: str,
                   today: date) -> ItemDecision:
    if coded is None:
        raise ActionError(f"{action} is an IPR action (TRIPS Art. 55) this agency does not take", "action")
    if before is None or before.get("hold_reason") != "IPR_SUSPENSION":
        raise ActionError(f"item {seq} is not suspended for IPR", "items")
    until = before.get("valid_until")
    if action == "extend":
        if before["code"] == coded.code:
            raise ActionError(f"item {seq}'s suspension was already extended: Art. 55 allows it once", "items")
        start = date.fromisoformat(until) if until else today
        until = add_working_days(start, officer_actions().extension_working_days).isoformat()
    return _item(seq, "HOLD", coded.code, _reason(coded.text, note), hold_reason="IPR_SUSPENSION",
                 valid_until=until)


def _item(seq: int, outcome: Literal["RELEASE", "HOLD", "REFUSE"], code: str, reason: str, *,
          hold_reason: Literal["DOCUMENTS_REQUIRED", "INSPECTION", "IPR_SUSPENSION"] | None = None,
          valid_until: str | None = None) -> ItemDecision:
    return {"sequence": seq, "outcome": outcome, "code": code, "reason": reason, "hold_reason": hold_reason,
            "valid_until": valid_until}


def _still_held(seq: int) -> ItemDecision:
    return _item(seq, "HOLD", "H20", "Held: awaiting the officer's decision", hold_reason="INSPECTION")
