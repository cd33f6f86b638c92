"""Customs reference engine: commodity-code check and risk selectivity.

Lanes, as in most customs risk engines: red (physical inspection), yellow (documentary check),
green (release). Authorised economic operators skip yellow, never red.

Codes:
    C01  green: released, no risk rule selected the item
    C02  green: released with AEO facilitation (declarant holds AEOC/AEOS)
    H01  red: held for physical inspection (a high-risk profile matched)
    H02  yellow: held for documentary check (value above the threshold, declarant not AEO)
    N01  refused: commodity code is not 8 to 10 digits
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from adapters._engine import decision
from schemas import AgencyRequest, Authorisation, Item, ItemDecision

AEO_CATEGORIES = frozenset({"AEOC", "AEOS"})


def aeo_holder(
    authorisations: Iterable[Authorisation], declarant_id: str, categories: frozenset[str] = AEO_CATEGORIES
) -> bool:
    """True when an AEO authorisation belongs to the declarant (no holder id means the declarant)."""
    return any(
        a["category_code"] in categories and a["holder_id"] in (None, declarant_id) for a in authorisations
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskProfile:
    """A red-lane profile: commodity prefixes, optionally limited to some origins (empty = any)."""

    id: str
    hs_prefixes: tuple[str, ...]
    origins: frozenset[str] = frozenset()
    why: str

    def matches(self, item: Item) -> bool:
        return item["commodity_code"].startswith(self.hs_prefixes) and (
            not self.origins or item["origin_country"] in self.origins
        )


DEFAULT_RED: tuple[RiskProfile, ...] = (
    RiskProfile(
        id="RED-TOBACCO",
        hs_prefixes=("2402", "2403"),
        why="tobacco products carry a high excise-fraud risk",
    ),
    RiskProfile(
        id="RED-ARMS",
        hs_prefixes=("9301", "9302", "9303", "9305", "9306"),
        why="arms and ammunition are inspected on every entry",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomsRules:
    """Selectivity settings; the defaults release ordinary goods declared by ordinary traders.

    ``yellow_value_threshold`` is compared with the item's declared value in its own currency
    (no conversion: the reference engine has no exchange rates).
    """

    red: tuple[RiskProfile, ...] = DEFAULT_RED
    yellow_value_threshold: float = 100_000.0
    aeo_categories: frozenset[str] = field(default=AEO_CATEGORIES)


class CustomsEngine:
    """Customs decides on every item: classification format first, then the risk lane."""

    agency = "customs"

    def __init__(self, rules: CustomsRules | None = None) -> None:
        self.rules = rules or CustomsRules()

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        aeo = aeo_holder(request["authorisations"], request["declarant_id"], self.rules.aeo_categories)
        return [self._item(item, aeo=aeo) for item in request["items"]]

    def _item(self, item: Item, *, aeo: bool) -> ItemDecision:
        seq, code = item["sequence"], item["commodity_code"]
        if not (code.isascii() and code.isdigit() and 8 <= len(code) <= 10):
            return decision(seq, "REFUSE", "N01", f"Commodity code {code!r} is not 8 to 10 digits.")
        for profile in self.rules.red:
            if profile.matches(item):
                return decision(
                    seq,
                    "HOLD",
                    "H01",
                    f"Red lane ({profile.id}): {profile.why}; held for physical inspection.",
                    hold_reason="INSPECTION",
                )
        if aeo:
            return decision(seq, "RELEASE", "C02", "Green lane: released with AEO facilitation.")
        value = item["value"]
        if value is not None and value > self.rules.yellow_value_threshold:
            return decision(
                seq,
                "HOLD",
                "H02",
                f"Yellow lane: declared value {value:,.2f} {item['currency'] or ''} exceeds "
                f"{self.rules.yellow_value_threshold:,.2f} without AEO; held for documentary check.",
                hold_reason="DOCUMENTS_REQUIRED",
            )
        return decision(seq, "RELEASE", "C01", "Green lane: released.")
