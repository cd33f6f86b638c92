"""What a declaration type says: direction, and what its additional type allows (``declaration-types.json``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from refdata._files import load_json
from refdata.errors import ReferenceDataError

DIRECTIONS = frozenset({"IMPORT", "EXPORT", "TRANSIT", "OTHER"})


@dataclass(frozen=True, slots=True)
class DeclarationTypes:
    directions: Mapping[str, str]
    categories: Mapping[str, str]  # additional type letter -> category
    meanings: Mapping[str, str]  # category -> what it allows

    def direction(self, type_code: str) -> str:
        """IMPORT, EXPORT, TRANSIT or OTHER for a declaration type such as ``IMZ``; empty when unknown."""
        return self.directions.get(type_code[:2].upper(), "")

    def category(self, type_code: str) -> str:
        """The additional type's category (FRONTIER, PRE_LODGED, SIMPLIFIED, ...); empty without one."""
        if len(type_code) != 3 or type_code[:2].upper() not in self.directions:
            return ""
        return self.categories.get(type_code[2].upper(), "OTHER")


@functools.cache
def declaration_types() -> DeclarationTypes:
    raw = load_json("declaration-types.json")
    directions = raw.get("direction_by_declaration_type")
    additional = raw.get("additional_types")
    meanings = raw.get("categories")
    if not isinstance(directions, dict) or not isinstance(additional, dict) or not isinstance(meanings, dict):
        raise ReferenceDataError("refdata/declaration-types.json: three tables expected")
    if not set(directions.values()) <= DIRECTIONS:
        raise ReferenceDataError(f"refdata/declaration-types.json: directions must be among {sorted(DIRECTIONS)}")
    categories = {letter: entry.get("category") for letter, entry in additional.items()}
    unknown = {c for c in categories.values() if c not in meanings}
    if unknown:
        raise ReferenceDataError(f"refdata/declaration-types.json: undescribed categories {sorted(unknown)}")
    return DeclarationTypes(MappingProxyType(directions), MappingProxyType(categories), MappingProxyType(meanings))
