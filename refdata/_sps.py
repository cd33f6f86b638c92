"""What plant health, animal health and food safety ask of an item (``sps-requirements.json``).

One row per requirement: the concern it belongs to, the directions, commodity codes (HS prefixes, minus
excepted ones) and origins (empty = any) it covers, the documents that satisfy it, the Y-codes that claim
an exemption from it, and the share of consignments the authority inspects. Per concern, the first row
that covers an item applies; a regulator changes the file, not the code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from refdata._files import load_json
from refdata.errors import ReferenceDataError

CONCERNS = ("animal_health", "plant_health", "food_safety")
DIRECTIONS = frozenset({"IMPORT", "EXPORT", "TRANSIT", "OTHER"})
NAME = "refdata/sps-requirements.json"


@dataclass(frozen=True, slots=True)
class SPSRequirement:
    id: str
    concern: str
    directions: frozenset[str]
    hs_prefixes: tuple[str, ...]
    except_hs_prefixes: tuple[str, ...]
    origins: frozenset[str]  # empty: any origin
    documents: tuple[str, ...]
    exemptions: frozenset[str]
    inspection_rate: float
    export: bool  # the hub country's own certificate, never an import document
    source: str

    def covers(self, commodity_code: str, origin: str | None, direction: str) -> bool:
        return (
            direction in self.directions
            and commodity_code.startswith(self.hs_prefixes)
            and not (self.except_hs_prefixes and commodity_code.startswith(self.except_hs_prefixes))
            and (not self.origins or origin in self.origins)
        )


@dataclass(frozen=True, slots=True)
class SPSRequirements:
    hub_country: str
    requirements: tuple[SPSRequirement, ...]
    document_names: Mapping[str, str]
    reference_kinds: Mapping[str, str]  # document code -> "ched" or "any"
    reference_formats: Mapping[str, tuple[re.Pattern[str], ...]]
    waived: frozenset[str]
    unavailable: frozenset[str]
    source: str
    date: str

    def applicable(self, commodity_code: str, origin: str | None, direction: str) -> list[SPSRequirement]:
        """Per concern, the first requirement that covers the item (concerns in file order)."""
        found: dict[str, SPSRequirement] = {}
        for requirement in self.requirements:
            if requirement.concern not in found and requirement.covers(commodity_code, origin, direction):
                found[requirement.concern] = requirement
        return list(found.values())

    def reference_ok(self, code: str, reference: str | None) -> bool:
        """Whether a document's reference has the form its kind requires (any non-empty one when unknown)."""
        if not reference or not reference.strip():
            return False
        patterns = self.reference_formats.get(self.reference_kinds.get(code, "any"), ())
        return not patterns or any(p.match(reference.strip()) for p in patterns)

    def is_import_reference(self, reference: str | None) -> bool:
        """A CHED (an import pre-notification) reference: never an export certificate."""
        if not reference:
            return False
        return any(p.match(reference.strip()) for p in self.reference_formats.get("ched", ()))


def _strings(where: str, value: Any, *, empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or (not value and not empty) or not all(isinstance(v, str) and v for v in value):
        raise ReferenceDataError(f"{NAME}: {where}: expected a list of strings")
    return tuple(value)


def _requirement(n: int, raw: Any, documents: Mapping[str, Any]) -> SPSRequirement:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise ReferenceDataError(f"{NAME}: requirement #{n} needs an id")
    where = f"requirement {raw['id']}"
    if raw.get("concern") not in CONCERNS:
        raise ReferenceDataError(f"{NAME}: {where}: concern must be one of {list(CONCERNS)}")
    directions = frozenset(_strings(f"{where}.directions", raw.get("directions")))
    if not directions <= DIRECTIONS:
        raise ReferenceDataError(f"{NAME}: {where}: directions must be among {sorted(DIRECTIONS)}")
    hs = _strings(f"{where}.hs_prefixes", raw.get("hs_prefixes"))
    excepted = _strings(f"{where}.except_hs_prefixes", raw.get("except_hs_prefixes", []), empty=True)
    if not all(p.isdigit() for p in (*hs, *excepted)):
        raise ReferenceDataError(f"{NAME}: {where}: HS prefixes are digits only")
    needed = _strings(f"{where}.documents", raw.get("documents"))
    unknown = set(needed) - set(documents)
    if unknown:
        raise ReferenceDataError(f"{NAME}: {where}: documents {sorted(unknown)} are not described")
    rate = raw.get("inspection_rate")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ReferenceDataError(f"{NAME}: {where}: inspection_rate is a number from 0 to 1")
    return SPSRequirement(
        id=raw["id"], concern=raw["concern"], directions=directions, hs_prefixes=hs, except_hs_prefixes=excepted,
        origins=frozenset(_strings(f"{where}.origins", raw.get("origins", []), empty=True)), documents=needed,
        exemptions=frozenset(_strings(f"{where}.exemptions", raw.get("exemptions", []), empty=True)),
        inspection_rate=float(rate), export=raw.get("export") is True, source=str(raw.get("source", "")),
    )


@functools.cache
def sps_requirements() -> SPSRequirements:
    raw = load_json("sps-requirements.json")
    documents, formats, statuses = raw.get("documents"), raw.get("reference_formats"), raw.get("statuses")
    if not isinstance(documents, dict) or not isinstance(formats, dict) or not isinstance(statuses, dict):
        raise ReferenceDataError(f"{NAME}: documents, reference_formats and statuses are objects")
    try:
        compiled = {kind: tuple(re.compile(p) for p in _strings(f"reference_formats.{kind}", patterns))
                    for kind, patterns in formats.items()}
    except re.error as exc:
        raise ReferenceDataError(f"{NAME}: a reference format is not a regular expression: {exc}") from exc
    kinds = {code: str(entry.get("reference", "any")) for code, entry in documents.items()}
    undefined = {k for k in kinds.values() if k != "any" and k not in compiled}
    if undefined:
        raise ReferenceDataError(f"{NAME}: reference kinds {sorted(undefined)} have no format")
    requirements = raw.get("requirements")
    if not isinstance(requirements, list) or not requirements:
        raise ReferenceDataError(f"{NAME}: requirements must be a non-empty list")
    rows = tuple(_requirement(n, r, documents) for n, r in enumerate(requirements))
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise ReferenceDataError(f"{NAME}: duplicate requirement ids")
    hub = raw.get("hub_country")
    if not isinstance(hub, str) or len(hub) != 2:
        raise ReferenceDataError(f"{NAME}: hub_country is a two-letter country code")
    return SPSRequirements(
        hub_country=hub, requirements=rows,
        document_names=MappingProxyType({code: str(entry.get("name", code)) for code, entry in documents.items()}),
        reference_kinds=MappingProxyType(kinds), reference_formats=MappingProxyType(compiled),
        waived=frozenset(_strings("statuses.waived", statuses.get("waived", []), empty=True)),
        unavailable=frozenset(_strings("statuses.unavailable", statuses.get("unavailable", []), empty=True)),
        source=str(raw["source"]), date=str(raw["date"]),
    )
