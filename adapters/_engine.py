"""The one interface every agency's decision engine offers.

An engine is pure: it gets the agency's request and the date it decides on, and answers one
``ItemDecision`` per item, in the request's order. Transport (Kafka, an agency's HTTP system) is
somebody else's concern; the runner hands requests in and carries decisions out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, runtime_checkable

from schemas import AgencyRequest, HoldReason, ItemDecision, Outcome


@runtime_checkable
class DecisionEngine(Protocol):
    """Decides, per item, whether an agency releases, holds or refuses the goods."""

    agency: str

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        """One decision per item of ``request["items"]``, in order; ``today`` is the decision date."""
        ...


def decision(sequence: int, outcome: Outcome, code: str, reason: str, *, hold_reason: HoldReason | None = None,
             valid_until: date | None = None, selected_by: Sequence[str] = ()) -> ItemDecision:
    """Build an ``ItemDecision``; the code's first letter must agree with the outcome, and a hold says why
    in the shared vocabulary (documents required, inspection, IPR suspension, ...). ``selected_by`` names the
    profiles or rules that selected the item (the feedback loop counts selections and hits by them); left out
    of the record when empty, as the Avro default is."""
    expected = {"RELEASE": "C", "HOLD": "H", "REFUSE": "N"}[outcome]
    if not code.startswith(expected):
        raise ValueError(f"decision code {code!r} does not fit outcome {outcome}")
    if (outcome == "HOLD") != (hold_reason is not None):
        raise ValueError(f"a hold reason goes with HOLD and only with it (got {outcome} and {hold_reason})")
    item: ItemDecision = {"sequence": sequence, "outcome": outcome, "code": code, "reason": reason,
                          "hold_reason": hold_reason,
                          "valid_until": valid_until.isoformat() if valid_until is not None else None}
    if selected_by:
        item["selected_by"] = list(selected_by)
    return item
