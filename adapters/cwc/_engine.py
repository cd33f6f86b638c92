"""CWC national authority reference engine: scheduled chemicals and the trading partner.

The chemical is found by CAS number first (exact), else by an HS 2022 subheading whose text names
it. The partner is the export country for imports (declaration type IM..), the destination
country for exports (EX..), otherwise, or when missing, the item's origin.

Document codes (project choice, see ``adapters/SOURCES.md``):
    C690  CWC Schedule 1 transfer licence issued by the national authority
    C691  end-use certificate from the recipient State's government (Schedule 3 export to a non-party)

Codes:
    C01  released: Schedule 1, licence C690 declared and the partner is a State Party
    C02  released: Schedule 2, the partner is a State Party
    C03  released: Schedule 3 checked (import, export to a State Party, or end-use certificate declared)
    C04  released: not a scheduled chemical
    C05  released: chemical exempted from its Schedule entry (fonofos, DMAE, DEAE)
    H01  held: Schedule 3 export to a State not Party without end-use certificate C691
    H02  held: partner country unknown, the State Party check cannot be made
    H03  held: HS subheading is a basket that holds a scheduled chemical; declare the CAS number
    N01  refused: Schedule 1 transfer with a State not Party
    N02  refused: Schedule 1 transfer without licence C690
    N03  refused: Schedule 2 transfer to or from a State not Party
"""

from __future__ import annotations

from collections.abc import Set
from datetime import date

from adapters._engine import decision
from adapters.cwc._schedules import ScheduledChemical, Schedules, load_schedules, states_not_party
from schemas import AgencyRequest, Item, ItemDecision

LICENCE = "C690"
END_USE_CERTIFICATE = "C691"


def partner_country(request: AgencyRequest, item: Item) -> str | None:
    """The other State of the transfer: export country for imports, destination for exports."""
    kind = request["declaration_type"][:2].upper()
    partner = {"IM": request["export_country"], "EX": request["destination_country"]}.get(kind)
    return partner or item["origin_country"]


class CWCEngine:
    """Schedule 1: licensed and party-only; Schedule 2: party-only; Schedule 3: end-use certificate."""

    agency = "cwc"

    def __init__(self, schedules: Schedules | None = None, not_party: Set[str] | None = None) -> None:
        self.schedules = schedules if schedules is not None else load_schedules()
        self.not_party = frozenset(not_party if not_party is not None else states_not_party())

    def find(self, item: Item) -> tuple[ScheduledChemical, str] | None:
        """The strictest scheduled chemical the item is, and how it was found; None if none."""
        found = [self.schedules.by_cas[c] for c in item["cas_numbers"] if c in self.schedules.by_cas]
        if found:
            chem = min(found, key=lambda c: c.schedule)
            return chem, f"CAS {chem.cas}"
        hs6 = item["commodity_code"][:6]
        if hs6 in self.schedules.by_hs:
            return self.schedules.by_hs[hs6][0], f"HS subheading {hs6}"
        return None

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        return [self._item(request, item) for item in request["items"]]

    def _unscheduled(self, item: Item) -> ItemDecision:
        seq, hs6 = item["sequence"], item["commodity_code"][:6]
        for cas in item["cas_numbers"]:
            if cas in self.schedules.exempt_cas:
                entry = self.schedules.exempt_cas[cas].entry
                return decision(seq, "RELEASE", "C05", f"CAS {cas} is exempted from entry {entry}; released.")
        if hs6 in self.schedules.residual_hs and not item["cas_numbers"]:
            return decision(
                seq,
                "HOLD",
                "H03",
                f"HS subheading {hs6} includes a scheduled chemical; declare the CAS number.",
                hold_reason="DOCUMENTS_REQUIRED",
            )
        return decision(seq, "RELEASE", "C04", "Not a scheduled chemical; released.")

    def _item(self, request: AgencyRequest, item: Item) -> ItemDecision:
        seq = item["sequence"]
        found = self.find(item)
        if found is None:
            return self._unscheduled(item)
        chem, how = found
        docs = {d["category_code"] + d["type_code"] for d in item["documents"]}
        partner = partner_country(request, item)
        what = f"{chem.name} (Schedule {chem.schedule}, entry {chem.entry}, by {how})"
        exporting = request["declaration_type"][:2].upper() == "EX"
        if partner is None:
            if chem.schedule < 3 or exporting:
                return decision(
                    seq, "HOLD", "H02", f"{what}: partner country unknown; State Party check needed.",
                    hold_reason="OTHER",
                )
            return decision(seq, "RELEASE", "C03", f"{what}: import checked; released.")
        if chem.schedule == 1:
            return self._schedule_1(seq, what, partner, docs)
        if chem.schedule == 2:
            return self._schedule_2(seq, what, partner)
        return self._schedule_3(seq, what, partner, docs, exporting=exporting)

    def _schedule_1(self, seq: int, what: str, partner: str, docs: set[str]) -> ItemDecision:
        if partner in self.not_party:
            return decision(seq, "REFUSE", "N01", f"{what}: {partner} is not a State Party to the CWC.")
        if LICENCE not in docs:
            return decision(seq, "REFUSE", "N02", f"{what}: no Schedule 1 transfer licence {LICENCE}.")
        return decision(
            seq, "RELEASE", "C01", f"{what}: licence {LICENCE} declared, {partner} is a State Party."
        )

    def _schedule_2(self, seq: int, what: str, partner: str) -> ItemDecision:
        if partner in self.not_party:
            return decision(
                seq,
                "REFUSE",
                "N03",
                f"{what}: transfers to or from {partner}, a State not Party, are prohibited.",
            )
        return decision(seq, "RELEASE", "C02", f"{what}: {partner} is a State Party; released.")

    def _schedule_3(
        self, seq: int, what: str, partner: str, docs: set[str], *, exporting: bool
    ) -> ItemDecision:
        if exporting and partner in self.not_party and END_USE_CERTIFICATE not in docs:
            return decision(
                seq,
                "HOLD",
                "H01",
                f"{what}: export to {partner}, a State not Party, needs end-use certificate "
                f"{END_USE_CERTIFICATE}.",
                hold_reason="DOCUMENTS_REQUIRED",
            )
        return decision(seq, "RELEASE", "C03", f"{what}: checked; released.")
