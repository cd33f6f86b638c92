"""The register of recorded IP rights and the brand matcher shared by routing and the IPR engine.

A brand matches when the description spells it in whole words, read the way an officer reads it (``_marks``):
case, accents, look-alike characters, spacing and punctuation inside the mark do not matter ("Z3NTRA", "Zéntra"
and "ZEN-TRA" are ZENTRA), but "Zentralux" is not.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from refdata._ipr_marks import find_marks, key_prefixes, mark_key
from refdata.errors import ReferenceDataError

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    """Casefolded words of a text, the unit of brand matching."""
    return tuple(_WORD.findall(text.casefold()))


@dataclass(frozen=True, slots=True)
class RecordedRight:
    """One right recorded with customs (an application for action)."""

    right_id: str
    kind: str
    brand: str
    holder_name: str
    holder_id: str
    nice_classes: tuple[int, ...]
    hs_chapters: frozenset[str]
    valid_from: date
    valid_to: date
    contact: str

    def in_force(self, on: date) -> bool:
        return self.valid_from <= on <= self.valid_to


class BrandIndex:
    """Finds the recorded rights whose brand occurs in a description; built once, used per item."""

    __slots__ = ("_keys", "_prefixes", "_rights")

    def __init__(self, rights: Iterable[RecordedRight]) -> None:
        self._rights = tuple(rights)
        keys: dict[str, list[int]] = {}
        for index, right in enumerate(self._rights):
            key = mark_key(right.brand)
            if not key:
                raise ReferenceDataError(f"right {right.right_id}: brand {right.brand!r} has no letters")
            keys.setdefault(key, []).append(index)
        self._keys = keys
        self._prefixes = key_prefixes(keys)

    @property
    def rights(self) -> tuple[RecordedRight, ...]:
        return self._rights

    def matches(self, description: str) -> list[tuple[RecordedRight, str]]:
        """(right, the mark as the description writes it) for the rights named in ``description``, in register
        order, each once."""
        first: dict[int, str] = {}
        for index, written in find_marks(self._keys, description, prefixes=self._prefixes):
            first.setdefault(index, written)
        return [(self._rights[index], first[index]) for index in sorted(first)]

    def find(self, description: str) -> list[RecordedRight]:
        """Rights whose brand is in ``description``, in register order, each once."""
        return [right for right, _ in self.matches(description)]


def _right(raw: dict[str, Any]) -> RecordedRight:
    return RecordedRight(
        right_id=str(raw["right_id"]),
        kind=str(raw["kind"]),
        brand=str(raw["brand"]),
        holder_name=str(raw["holder_name"]),
        holder_id=str(raw["holder_id"]),
        nice_classes=tuple(int(c) for c in raw["nice_classes"]),
        hs_chapters=frozenset(f"{int(c):02d}" for c in raw["hs_chapters"]),
        valid_from=date.fromisoformat(raw["valid_from"]),
        valid_to=date.fromisoformat(raw["valid_to"]),
        contact=str(raw["contact"]),
    )


def parse_register(text: str) -> tuple[RecordedRight, ...]:
    """Parse a register JSON document; raise ``ReferenceDataError`` naming the bad right."""
    rights: list[RecordedRight] = []
    for n, raw in enumerate(json.loads(text)["rights"]):
        try:
            right = _right(raw)
        except (KeyError, ValueError, TypeError) as exc:
            raise ReferenceDataError(f"register.json right #{n}: {exc!r}") from exc
        if right.valid_to < right.valid_from:
            raise ReferenceDataError(f"register.json right {right.right_id}: valid_to before valid_from")
        rights.append(right)
    return tuple(rights)


@functools.cache
def load_register() -> tuple[RecordedRight, ...]:
    """The packaged sample register, parsed on first use."""
    text = resources.files("refdata").joinpath("ipr-register.json").read_text(encoding="utf-8")
    return parse_register(text)
