"""SPS reference engine: plant health, animal health and food safety, from a requirement table.

``refdata/sps-requirements.json`` says, per concern, which items (HS prefix, origin, direction) need
which documents, which Y-codes claim an exemption and how often the authority inspects. Per item the
engine checks every concern that covers it; the strictest answer wins.

Codes:
    C01  released: the required documents are declared, with references in the required form
    C02  released: an exemption (Y-code) or a waiver (document status XW) is declared and honoured
    C03  released: no SPS requirement covers the goods (routed by a declared document, which is noted)
    C04  released: supplementary declaration; the goods were controlled when first released
    H01  held, documents required: a required document is not declared (or not available)
    H02  held for physical and identity inspection (selected at the table's rate)
    H03  held, documents required: a document's reference is not in the form its kind requires, or an
         export declares an import document instead of the hub country's export certificate
The reference engine never refuses: a missing certificate can still be produced.

Selection for inspection is deterministic per submission, version, item and requirement (a hash,
not a random number), so a replay or a second engine instance decides the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from adapters._engine import decision
from refdata import SPSRequirement, SPSRequirements, declaration_types, sps_requirements
from schemas import AgencyRequest, Item, ItemDecision


def selected(key: str, rate: float) -> bool:
    """Whether ``key`` falls in the inspected share ``rate`` (0..1): the first 8 bytes of SHA-256, as a fraction."""
    if rate <= 0:
        return False
    draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return draw < rate


@dataclass(frozen=True, slots=True)
class _Check:
    requirement: SPSRequirement
    outcome: str  # "ok", "exempt", "missing", "malformed"
    detail: str


class SPSEngine:
    """Documents against the requirement table, then inspection at the table's rate."""

    agency = "sps"

    def __init__(self, table: SPSRequirements | None = None, *, inspections: bool = True) -> None:
        self._table = table
        self.inspections = inspections

    @property
    def table(self) -> SPSRequirements:
        if self._table is None:
            self._table = sps_requirements()
        return self._table

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        kinds = declaration_types()
        type_code = request["declaration_type"]
        direction = request.get("direction") or kinds.direction(type_code)
        additional = request.get("additional_type") or kinds.category(type_code)
        key = f"{request['submission_id']}:{request['version']}"
        internal = direction == "IMPORT" and request["export_country"] == self.table.hub_country
        return [self._item(item, direction, additional, key, internal=internal) for item in request["items"]]

    def _item(self, item: Item, direction: str, additional: str, key: str, *, internal: bool) -> ItemDecision:
        seq = item["sequence"]
        if additional == "SUPPLEMENTARY":
            return decision(seq, "RELEASE", "C04", "Supplementary declaration: the goods were released under the "
                            "earlier declaration it completes; no new SPS control.")
        if internal:
            return decision(seq, "RELEASE", "C03", f"Dispatched from {self.table.hub_country} itself: an internal "
                            "movement, not an entry from a third country; the import requirements do not apply.")
        requirements = self.table.applicable(item["commodity_code"], item["origin_country"], direction)
        if not requirements:
            where = direction.lower() or "unknown direction"
            return decision(seq, "RELEASE", "C03", f"No plant health, animal health or food safety requirement "
                            f"covers commodity {item['commodity_code'] or 'unknown'} ({where}); "
                            "declared documents noted.")
        checks = [self._check(item, r) for r in requirements]
        missing = [c for c in checks if c.outcome == "missing"]
        if missing:
            return decision(seq, "HOLD", "H01", "Documents required: " + "; ".join(c.detail for c in missing) + ".",
                            hold_reason="DOCUMENTS_REQUIRED", selected_by=[c.requirement.id for c in missing])
        malformed = [c for c in checks if c.outcome == "malformed"]
        if malformed:
            return decision(seq, "HOLD", "H03", "Documents required: " + "; ".join(c.detail for c in malformed) + ".",
                            hold_reason="DOCUMENTS_REQUIRED", selected_by=[c.requirement.id for c in malformed])
        if self.inspections:
            for c in checks:
                if c.outcome == "ok" and selected(f"{key}:{seq}:{c.requirement.id}", c.requirement.inspection_rate):
                    return decision(seq, "HOLD", "H02", f"Selected for physical and identity inspection "
                                    f"({c.requirement.concern.replace('_', ' ')}, {c.requirement.id}, "
                                    f"rate {c.requirement.inspection_rate:.0%}).", hold_reason="INSPECTION",
                                    selected_by=[c.requirement.id])
        summary = "; ".join(c.detail for c in checks)
        if all(c.outcome == "exempt" for c in checks):
            return decision(seq, "RELEASE", "C02", f"Exemption honoured: {summary}.")
        return decision(seq, "RELEASE", "C01", f"Documents verified: {summary}.")

    def _check(self, item: Item, requirement: SPSRequirement) -> _Check:
        table = self.table
        concern = requirement.concern.replace("_", " ")
        declared = [(d["category_code"] + d["type_code"], d) for d in item["documents"]]
        exemption = next((code for code, _ in declared if code in requirement.exemptions), None)
        wanted = [(code, d) for code, d in declared if code in requirement.documents]
        names = " or ".join(f"{table.document_names[c]} ({c})" for c in requirement.documents)
        for code, d in wanted:
            if d.get("status") in table.waived:
                return _Check(requirement, "exempt", f"{concern}: waiver {d.get('status')} claimed on {code}")
        if exemption is not None and not wanted:
            return _Check(requirement, "exempt", f"{concern}: exemption {exemption} declared")
        available = [(c, d) for c, d in wanted if d.get("status") not in table.unavailable]
        if not available:
            why = " (declared as unavailable)" if wanted else ""
            if exemption is not None:
                return _Check(requirement, "exempt", f"{concern}: exemption {exemption} declared")
            target = "the hub country's export " if requirement.export else ""
            return _Check(requirement, "missing", f"{concern} ({requirement.id}): {target}{names} not declared{why} "
                          f"for commodity {item['commodity_code']}")
        problems = []
        for code, d in available:
            reference = d["id"]
            if requirement.export and table.is_import_reference(reference):
                problems.append(f"{code} {reference} is an import (CHED) reference; an export needs the "
                                f"{table.hub_country} export phytosanitary certificate")
            elif not reference:
                problems.append(f"{code} is declared without a reference")
            elif not table.reference_ok(code, reference):
                form = "a CHED reference such as GBCHD2024.1234567" if table.reference_kinds.get(code) == "ched" \
                    else "a reference"
                problems.append(f"{code} reference {reference!r} is not {form}")
            else:
                return _Check(requirement, "ok", f"{concern} {code} {reference}")
        if exemption is not None:
            return _Check(requirement, "exempt", f"{concern}: exemption {exemption} declared")
        return _Check(requirement, "malformed", f"{concern} ({requirement.id}): " + "; ".join(problems))
