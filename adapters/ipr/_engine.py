"""IPR border-enforcement reference engine: suspend release of goods matching a recorded right.

A match needs the brand in the description (read as an officer reads it, see ``_marks``), the item's HS chapter
among the right's chapters, the right in force on the decision date, and a declarant other than the right
holder. The holder then has 10 working days (Monday to Friday; public holidays are not modelled) to start
proceedings, extendable once by 10 (TRIPS Art. 55); ``_clock`` and the adapter service keep that clock.

Codes:
    C01  released: no recorded right matches the item
    C02  released: the matching right is not in force on the decision date
    C03  released: the declarant is the right holder
    C04  released: the Art. 55 time-limit passed without proceedings (issued by the timer, see ``_clock``)
    H01  held: release suspended, right holder to be notified, deadline in the reason and in valid_until
    H02  held: proceedings notified (sent by an officer or the right holder's system; the clock stops)
    H03  held: time-limit extended once by 10 working days (sent by an officer or the right holder's system)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from adapters._engine import decision
from adapters.ipr._clock import PROCEEDINGS_WORKING_DAYS, Suspended, add_working_days
from refdata._ipr_register import BrandIndex, RecordedRight, load_register
from schemas import AgencyRequest, Item, ItemDecision


class IPREngine:
    """Suspends goods that match a right recorded with customs and are not declared by its holder."""

    agency = "ipr"

    def __init__(self, register: Iterable[RecordedRight] | None = None, *,
                 working_days: int = PROCEEDINGS_WORKING_DAYS) -> None:
        self.register = tuple(register if register is not None else load_register())
        self._index = BrandIndex(self.register)
        self.working_days = working_days

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        return self.examine(request, today=today)[0]

    def examine(self, request: AgencyRequest, *, today: date) -> tuple[list[ItemDecision], list[Suspended]]:
        """The decisions, and the suspended items with the right whose holder must be notified."""
        decisions: list[ItemDecision] = []
        suspended: list[Suspended] = []
        for item in request["items"]:
            made, right = self._item(item, request["declarant_id"], today)
            decisions.append(made)
            if right is not None:
                suspended.append(Suspended(sequence=item["sequence"], right_id=right.right_id, brand=right.brand,
                                           holder_id=right.holder_id, holder_name=right.holder_name,
                                           contact=right.contact))
        return decisions, suspended

    def _item(self, item: Item, declarant: str, today: date) -> tuple[ItemDecision, RecordedRight | None]:
        seq, chapter = item["sequence"], item["commodity_code"][:2]
        matches = [(r, w) for r, w in self._index.matches(item["description"]) if chapter in r.hs_chapters]
        if not matches:
            return decision(seq, "RELEASE", "C01", "No recorded right matches the goods; released."), None
        in_force = [(r, w) for r, w in matches if r.in_force(today)]
        if not in_force:
            r = matches[0][0]
            return decision(seq, "RELEASE", "C02", f"Recorded right {r.right_id} for {r.brand} is not in force on "
                            f"{today.isoformat()}; released."), None
        suspect = [(r, w) for r, w in in_force if r.holder_id != declarant]
        if not suspect:
            r = in_force[0][0]
            return decision(seq, "RELEASE", "C03", f"Declarant is the holder of {r.brand} ({r.holder_name})."), None
        r, written = suspect[0]
        as_written = "" if written == r.brand else f" (written {written!r})"
        deadline = add_working_days(today, self.working_days)
        extended = add_working_days(deadline, self.working_days)
        return decision(
            seq,
            "HOLD",
            "H01",
            f"Release suspended: {r.brand}{as_written} is a {r.kind} recorded by {r.holder_name} ({r.holder_id}) "
            f"for HS chapter {chapter}; the right holder is notified and must start proceedings by "
            f"{deadline.isoformat()} ({self.working_days} working days, extendable once by {self.working_days} "
            f"working days to {extended.isoformat()}), otherwise the goods are released (TRIPS Art. 55).",
            hold_reason="IPR_SUSPENSION",
            valid_until=deadline,
        ), r
