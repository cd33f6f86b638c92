"""SPS (plant and animal health) reference engine: is the right certificate declared?

What each item needs, by HS code:
    animal products (01-05, 1501-1506, 16)                   N853 veterinary entry document
    plant products (06-14, 1507-1515, 44, 5201-5203)         N851 phytosanitary certificate
    other food (rest of 15, 17-24)                           N851 or N853
    anything else (routed here only by a declared document)  nothing: not under SPS control

Codes:
    C01  released: phytosanitary certificate (N851) declared
    C02  released: veterinary document (N853) declared
    C03  released: the goods are not under SPS control (a certificate was declared anyway)
    H01  held, documents required: the certificate the goods need is not declared
    H02  held for physical and identity inspection (an inspection profile in ``SPSRules`` matched)
The reference engine never refuses: a missing certificate can still be produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import Enum

from adapters._engine import decision
from schemas import AgencyRequest, Item, ItemDecision

PHYTO = "N851"
VETERINARY = "N853"


class Need(Enum):
    ANIMAL = "veterinary document N853"
    PLANT = "phytosanitary certificate N851"
    EITHER = "phytosanitary certificate N851 or veterinary document N853"
    NONE = "no certificate"


_ANIMAL = ("01", "02", "03", "04", "05", "16", "1501", "1502", "1503", "1504", "1505", "1506")
_PLANT = (
    *(f"{c:02d}" for c in range(6, 15)),
    *(f"15{h:02d}" for h in range(7, 16)),
    "44",
    "5201",
    "5202",
    "5203",
)
_FOOD = ("15", *(f"{c:02d}" for c in range(17, 25)))


def need(commodity_code: str) -> Need:
    """Which certificate an item with this commodity code needs."""
    if commodity_code.startswith(_ANIMAL):
        return Need.ANIMAL
    if commodity_code.startswith(_PLANT):
        return Need.PLANT
    if commodity_code.startswith(_FOOD):
        return Need.EITHER
    return Need.NONE


@dataclass(frozen=True, slots=True, kw_only=True)
class SPSRules:
    """Inspection selection; off by default (no prefixes). Empty ``inspect_origins`` = any origin."""

    inspect_hs_prefixes: tuple[str, ...] = ()
    inspect_origins: frozenset[str] = frozenset()

    def inspect(self, item: Item) -> bool:
        return (
            bool(self.inspect_hs_prefixes)
            and item["commodity_code"].startswith(self.inspect_hs_prefixes)
            and (not self.inspect_origins or item["origin_country"] in self.inspect_origins)
        )


class SPSEngine:
    """Plant and animal health: certificate present, and inspection when a profile selects it."""

    agency = "sps"

    def __init__(self, rules: SPSRules | None = None) -> None:
        self.rules = rules or SPSRules()

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        return [self._item(item) for item in request["items"]]

    def _item(self, item: Item) -> ItemDecision:
        seq = item["sequence"]
        declared = {d["category_code"] + d["type_code"] for d in item["documents"]}
        needed = need(item["commodity_code"])
        if needed is Need.NONE:
            return decision(seq, "RELEASE", "C03", "Goods not under SPS control; declared certificate noted.")
        has_phyto, has_vet = PHYTO in declared, VETERINARY in declared
        present = {
            Need.ANIMAL: has_vet,
            Need.PLANT: has_phyto,
            Need.EITHER: has_phyto or has_vet,
        }[needed]
        if not present:
            return decision(
                seq,
                "HOLD",
                "H01",
                f"Documents required: {needed.value} not declared for commodity {item['commodity_code']}.",
                hold_reason="DOCUMENTS_REQUIRED",
            )
        if self.rules.inspect(item):
            return decision(seq, "HOLD", "H02", "Selected for physical and identity inspection.",
                            hold_reason="INSPECTION")
        if has_vet and needed is not Need.PLANT:
            return decision(seq, "RELEASE", "C02", "Veterinary document N853 declared; released.")
        return decision(seq, "RELEASE", "C01", "Phytosanitary certificate N851 declared; released.")
