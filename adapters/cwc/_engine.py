"""CWC national authority reference engine: find the scheduled chemical, then check the transfer.

Finding it, strictest schedule first, from every field that can carry it: the CAS numbers of the item (declared,
or found in the description and additional information), its CUS code (through the CUS-to-CAS table of
``refdata/cwc-controls.json``), the names and synonyms of the schedules in the description and statements, and
the HS 2022 subheading when its text names a scheduled chemical. A residual "n.e.c." basket (arsenic trichloride
in 281219) never decides alone: without a CAS number or a name, goods under it are not a scheduled chemical.

The partner is the export country for imports (declaration type IM..), the destination country for exports
(EX..), otherwise, or when missing, the item's origin. Document codes, mixture thresholds and the Schedule 1
quantity limit are data (``refdata/cwc-controls.json``), not constants: a regulator changes them there.

Codes:
    C01  released: Schedule 1, licence declared, the partner is a State Party, quantity within the limit
    C02  released: Schedule 2, the partner is a State Party
    C03  released: Schedule 3 checked (import, export to a State Party, or end-use certificate declared)
    C04  released: not a scheduled chemical
    C05  released: chemical exempted from its Schedule entry (fonofos, DMAE, DEAE)
    C06  released: Schedule 2 mixture with a State not Party at a declared concentration within the threshold
    C07  released: Schedule 3 mixture exported to a State not Party at a concentration that needs no end-use
         certificate
    H01  held: Schedule 3 export to a State not Party without an end-use certificate
    H02  held: partner country unknown, the State Party check cannot be made
    N01  refused: Schedule 1 transfer with a State not Party
    N02  refused: Schedule 1 transfer without the licence
    N03  refused: Schedule 2 transfer to or from a State not Party
    N04  refused: Schedule 1 quantity above what a State Party may hold (Verification Annex Part VI para 2)
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import date

from adapters._engine import decision
from refdata import CWCControls, cwc_controls
from refdata._cwc_names import declared_percent
from refdata._cwc_schedules import ScheduledChemical, Schedules, load_schedules, states_not_party
from schemas import AgencyRequest, Item, ItemDecision
from schemas._context import item_texts


def partner_country(request: AgencyRequest, item: Item) -> str | None:
    """The other State of the transfer: export country for imports, destination for exports."""
    kind = request["declaration_type"][:2].upper()
    partner = {"IM": request["export_country"], "EX": request["destination_country"]}.get(kind)
    return partner or item["origin_country"]


def schedule_part(chem: ScheduledChemical) -> str:
    """"2A" or "2B" for Schedule 2 (from the entry 2.A.x / 2.B.x), else the schedule number."""
    if chem.schedule == 2:
        return "2" + chem.entry.split(".")[1]
    return str(chem.schedule)


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the checks of one item need, found once."""

    seq: int
    what: str
    partner: str | None
    docs: frozenset[str]
    percent: float | None
    net_mass_kg: float | None
    exporting: bool


class CWCEngine:
    """Schedule 1: licensed, party-only, limited quantity; Schedule 2: party-only; Schedule 3: end-use certificate;
    low-concentration mixtures as the controls say."""

    agency = "cwc"

    def __init__(self, schedules: Schedules | None = None, not_party: Set[str] | None = None,
                 controls: CWCControls | None = None) -> None:
        self.schedules = schedules if schedules is not None else load_schedules()
        self.not_party = frozenset(not_party if not_party is not None else states_not_party())
        self.controls = controls if controls is not None else cwc_controls()

    def _cas_numbers(self, item: Item) -> list[str]:
        """The declared CAS numbers and the one the item's CUS code stands for, if the table has it."""
        mapped = self.controls.cus_to_cas.get(item.get("cus_code") or "")
        return [*item["cas_numbers"], *([mapped] if mapped is not None else [])]

    def find(self, item: Item) -> tuple[ScheduledChemical, str] | None:
        """The strictest scheduled chemical the item is, and how it was found; None if none."""
        found = [(self.schedules.by_cas[cas], f"CAS {cas}") for cas in item["cas_numbers"]
                 if cas in self.schedules.by_cas]
        cus = item.get("cus_code") or ""
        mapped = self.controls.cus_to_cas.get(cus)
        if mapped is not None and mapped in self.schedules.by_cas:
            found.append((self.schedules.by_cas[mapped], f"CUS {cus} (CAS {mapped})"))
        for text in item_texts(item):
            for name, chem in self.schedules.names.find(text, commodity_code=item["commodity_code"]):
                found.append((chem, f"name {name!r}"))
        hs6 = item["commodity_code"][:6]
        if hs6 in self.schedules.by_hs:
            found.append((self.schedules.by_hs[hs6][0], f"HS subheading {hs6}"))
        if not found:
            return None
        return min(found, key=lambda entry: entry[0].schedule)  # stable: the first way of the strictest

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        return [self._item(request, item) for item in request["items"]]

    def _unscheduled(self, item: Item) -> ItemDecision:
        seq, hs6 = item["sequence"], item["commodity_code"][:6]
        for cas in self._cas_numbers(item):
            if cas in self.schedules.exempt_cas:
                entry = self.schedules.exempt_cas[cas].entry
                return decision(seq, "RELEASE", "C05", f"CAS {cas} is exempted from entry {entry}; released.")
        for text in item_texts(item):
            for name, chem in self.schedules.exempt_names.find(text, commodity_code=item["commodity_code"]):
                return decision(seq, "RELEASE", "C05", f"{name} is exempted from entry {chem.entry}; released.")
        if hs6 in self.schedules.residual_hs:
            return decision(seq, "RELEASE", "C04", f"HS subheading {hs6} is a basket that holds a scheduled "
                            "chemical among others, and neither a CAS number nor a name of one is declared; "
                            "not a scheduled chemical, released.")
        return decision(seq, "RELEASE", "C04", "Not a scheduled chemical; released.")

    def _item(self, request: AgencyRequest, item: Item) -> ItemDecision:
        found = self.find(item)
        if found is None:
            return self._unscheduled(item)
        chem, how = found
        facts = _Facts(
            seq=item["sequence"],
            what=f"{chem.name} (Schedule {chem.schedule}, entry {chem.entry}, by {how})",
            partner=partner_country(request, item),
            docs=frozenset(d["category_code"] + d["type_code"] for d in item["documents"]),
            percent=declared_percent(item_texts(item)),
            net_mass_kg=item["net_mass_kg"],
            exporting=request["declaration_type"][:2].upper() == "EX",
        )
        if facts.partner is None:
            if chem.schedule < 3 or facts.exporting:
                return decision(facts.seq, "HOLD", "H02", f"{facts.what}: partner country unknown; State Party "
                                "check needed.", hold_reason="OTHER")
            return decision(facts.seq, "RELEASE", "C03", f"{facts.what}: import checked; released.")
        if chem.schedule == 1:
            return self._schedule_1(chem, facts, facts.partner)
        if chem.schedule == 2:
            return self._schedule_2(chem, facts, facts.partner)
        return self._schedule_3(facts, facts.partner)

    def _schedule_1(self, chem: ScheduledChemical, f: _Facts, partner: str) -> ItemDecision:
        if partner in self.not_party:
            return decision(f.seq, "REFUSE", "N01", f"{f.what}: {partner} is not a State Party to the CWC.")
        licences = self.controls.licence.get(1, frozenset())
        if licences and not licences & f.docs:
            return decision(f.seq, "REFUSE", "N02", f"{f.what}: no Schedule 1 transfer licence "
                            f"({' or '.join(sorted(licences))}); transfers are only for research, medical, "
                            "pharmaceutical or protective purposes.")
        if f.net_mass_kg is not None:
            kg = f.net_mass_kg * (f.percent / 100 if f.percent is not None else 1)
            if kg > self.controls.schedule_1_max_kg:
                return decision(f.seq, "REFUSE", "N04", f"{f.what}: {kg:g} kg is more than the "
                                f"{self.controls.schedule_1_max_kg:g} kg a State Party may hold "
                                "(Verification Annex Part VI para 2).")
        note = ""
        small = self.controls.notify_at_transfer_kg.get(chem.cas or "")
        if small is not None and f.net_mass_kg is not None and f.net_mass_kg <= small:
            note = " Notification by the time of transfer suffices for this quantity (Part VI para 5bis)."
        return decision(f.seq, "RELEASE", "C01", f"{f.what}: licence declared, {partner} is a State Party.{note}")

    def _schedule_2(self, chem: ScheduledChemical, f: _Facts, partner: str) -> ItemDecision:
        if partner not in self.not_party:
            return decision(f.seq, "RELEASE", "C02", f"{f.what}: {partner} is a State Party; released.")
        part = schedule_part(chem)
        limit = self.controls.mixture_max_percent.get(part)
        if limit is not None and f.percent is not None and f.percent <= limit:
            return decision(f.seq, "RELEASE", "C06", f"{f.what}: mixture at a declared {f.percent:g} %, within "
                            f"the {limit:g} % low-concentration threshold for Schedule {part}; released.")
        return decision(f.seq, "REFUSE", "N03", f"{f.what}: transfers to or from {partner}, a State not Party, "
                        "are prohibited.")

    def _schedule_3(self, f: _Facts, partner: str) -> ItemDecision:
        if not (f.exporting and partner in self.not_party):
            return decision(f.seq, "RELEASE", "C03", f"{f.what}: checked; released.")
        certificates = self.controls.end_use_certificate.get(3, frozenset())
        if certificates & f.docs:
            return decision(f.seq, "RELEASE", "C03", f"{f.what}: end-use certificate declared; released.")
        limit = self.controls.mixture_max_percent.get("3")
        if limit is not None and f.percent is not None and f.percent <= limit:
            return decision(f.seq, "RELEASE", "C07", f"{f.what}: mixture at a declared {f.percent:g} %, within "
                            f"the {limit:g} % threshold below which no end-use certificate is needed; released.")
        return decision(f.seq, "HOLD", "H01", f"{f.what}: export to {partner}, a State not Party, needs an end-use "
                        f"certificate ({' or '.join(sorted(certificates))}).", hold_reason="DOCUMENTS_REQUIRED")
