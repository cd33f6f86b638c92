"""The generic reference engine of an agency configured by data: a requirement table (``refdata/``) says which
goods, in which direction, need which documents, and which may not go to some destinations at all.

Per item, in this order:
    N..  refused: a refusal row matches (goods, direction, destination), e.g. an arms embargo
    C..  released: a requirement matches and one of its documents is declared (and not waived, status XW)
    H..  held, documents required: a requirement matches and none of its documents is declared
    C00  released: no requirement of the agency applies (routed here by a rule that was broader)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from adapters._engine import decision
from refdata import Requirement, RequirementTable, requirement_table
from schemas import AgencyRequest, Item, ItemDecision

WAIVED = "XW"  # CDS document status: waived (a document that is not produced does not satisfy)


def _terms_hit(terms: tuple[str, ...], description: str) -> bool:
    text = description.casefold()
    return any(re.search(rf"\b{re.escape(term.casefold())}\b", text) for term in terms)


def applies(requirement: Requirement, item: Item, direction: str) -> bool:
    """A requirement applies to goods of its HS prefixes, or (when it has them) named by its terms."""
    if direction and direction not in requirement.directions:
        return False
    by_hs = bool(item["commodity_code"]) and item["commodity_code"].startswith(requirement.hs_prefixes)
    return by_hs or (bool(requirement.description_terms) and _terms_hit(requirement.description_terms,
                                                                         item["description"]))


def _declared(item: Item, codes: frozenset[str]) -> str | None:
    for document in item["documents"]:
        code = document["category_code"] + document["type_code"]
        if code in codes and document.get("status") != WAIVED:
            return code
    return None


@dataclass(slots=True)
class RequirementsEngine:
    agency: str
    table: RequirementTable

    @classmethod
    def for_agency(cls, agency: str) -> RequirementsEngine:
        return cls(agency, requirement_table(agency))

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        direction = request.get("direction", "")
        destination = request.get("destination_country") or ""
        return [self._item(item, direction, destination) for item in request["items"]]

    def _item(self, item: Item, direction: str, destination: str) -> ItemDecision:
        seq = item["sequence"]
        for refusal in self.table.refusals:
            if ((not direction or direction in refusal.directions) and destination in refusal.destinations
                    and bool(item["commodity_code"]) and item["commodity_code"].startswith(refusal.hs_prefixes)):
                return decision(seq, "REFUSE", refusal.code, f"{refusal.why} ({destination}; {refusal.id})",
                                selected_by=[refusal.id])
        for requirement in self.table.requirements:
            if not applies(requirement, item, direction):
                continue
            found = _declared(item, requirement.documents)
            if found is not None:
                return decision(seq, "RELEASE", requirement.release_code,
                                f"{requirement.what} is declared ({found}; {requirement.id})")
            return decision(seq, "HOLD", requirement.hold_code,
                            f"{requirement.what} is required and not declared ({requirement.id})",
                            hold_reason="DOCUMENTS_REQUIRED", selected_by=[requirement.id])
        return decision(seq, "RELEASE", "C00", f"no {self.agency} requirement applies to these goods")
