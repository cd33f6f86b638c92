"""IPR border-enforcement reference engine: suspend release of goods matching a recorded right.

A match needs the brand in the description (whole words, any case), the item's HS chapter among
the right's chapters, the right in force on the decision date, and a declarant other than the
right holder. The holder then has 10 working days (Monday to Friday; public holidays are not
modelled) to start proceedings, extendable once by 10 (TRIPS Art. 55); otherwise the goods go.

Codes:
    C01  released: no recorded right matches the item
    C02  released: the matching right is not in force on the decision date
    C03  released: the declarant is the right holder
    H01  held: release suspended, right holder notified, deadline in the reason
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from adapters._engine import decision
from adapters.ipr._register import BrandIndex, RecordedRight, load_register
from schemas import AgencyRequest, Item, ItemDecision

PROCEEDINGS_WORKING_DAYS = 10
SATURDAY = 5


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days (Mon-Fri) after ``start``; ``start`` itself is not counted."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = start
    while days:
        current += timedelta(days=1)
        if current.weekday() < SATURDAY:
            days -= 1
    return current


class IPREngine:
    """Suspends goods that match a right recorded with customs and are not declared by its holder."""

    agency = "ipr"

    def __init__(self, register: Iterable[RecordedRight] | None = None) -> None:
        self.register = tuple(register if register is not None else load_register())
        self._index = BrandIndex(self.register)

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        return [self._item(item, request["declarant_id"], today) for item in request["items"]]

    def _item(self, item: Item, declarant: str, today: date) -> ItemDecision:
        seq, chapter = item["sequence"], item["commodity_code"][:2]
        matches = [r for r in self._index.find(item["description"]) if chapter in r.hs_chapters]
        if not matches:
            return decision(seq, "RELEASE", "C01", "No recorded right matches the goods; released.")
        in_force = [r for r in matches if r.in_force(today)]
        if not in_force:
            r = matches[0]
            return decision(
                seq,
                "RELEASE",
                "C02",
                f"Recorded right {r.right_id} for {r.brand} is not in force on {today.isoformat()}; "
                "released.",
            )
        suspect = [r for r in in_force if r.holder_id != declarant]
        if not suspect:
            r = in_force[0]
            return decision(seq, "RELEASE", "C03", f"Declarant is the holder of {r.brand} ({r.holder_name}).")
        r = suspect[0]
        deadline = add_working_days(today, PROCEEDINGS_WORKING_DAYS)
        extended = add_working_days(deadline, PROCEEDINGS_WORKING_DAYS)
        return decision(
            seq,
            "HOLD",
            "H01",
            f"Release suspended: {r.brand} is a {r.kind} recorded by {r.holder_name} ({r.holder_id}) "
            f"for HS chapter {chapter}; right holder notified and must start proceedings by "
            f"{deadline.isoformat()} (10 working days, extendable once by 10 working days to "
            f"{extended.isoformat()}).",
            hold_reason="IPR_SUSPENSION",
            valid_until=deadline,
        )
