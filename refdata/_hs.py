"""The HS nomenclature the hub checks commodity codes against.

Loaded once per process from ``refdata/hs-nomenclature.csv``, the project's compact table
derived from the shared HS 2022 data by ``ops/hs_table.py`` (codes only). A commodity code is
known when its first six digits are a subheading of the table, HS 2017 codes the table carries
included, or when it is a heading declared at subheading level (``XXXX00``) and the heading has no
subheadings of its own. National digits beyond the sixth (CN, TARIC) are not checked: the hub
knows the international nomenclature, not every national tariff.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

_RESOURCE: Final = "hs-nomenclature.csv"


@dataclass(frozen=True, slots=True)
class HsNomenclature:
    """Chapters, headings and subheadings (as digit strings) of the nomenclature."""

    chapters: frozenset[str]
    headings: frozenset[str]
    subheadings: frozenset[str]
    #: Headings that have no subheading: declared as ``XXXX00``.
    undivided: frozenset[str]

    @classmethod
    def from_codes(cls, codes: list[str]) -> HsNomenclature:
        subheadings = frozenset(code for code in codes if len(code) == 6)
        headings = frozenset(code for code in codes if len(code) == 4)
        divided = {code[:4] for code in subheadings}
        return cls(
            chapters=frozenset(code for code in codes if len(code) == 2),
            headings=headings,
            subheadings=subheadings,
            undivided=headings - divided,
        )

    def knows(self, code: str) -> bool:
        """True when the first six digits of ``code`` are an HS subheading (see module doc)."""
        six = code[:6]
        if six in self.subheadings:
            return True
        return six.endswith("00") and six[:4] in self.undivided

    def problem(self, code: str) -> str | None:
        """Why ``code`` is not a known HS code, or None when it is."""
        if self.knows(code):
            return None
        six = code[:6]
        if six[:4] in self.headings:
            return f"commodity code {code}: {six} is not a subheading of HS heading {six[:4]}"
        if six[:2] in self.chapters:
            return f"commodity code {code}: {six[:4]} is not a heading of HS chapter {six[:2]}"
        return f"commodity code {code}: {six[:2]} is not an HS chapter"


def load_nomenclature(text: str) -> HsNomenclature:
    """Parse the table's text (comment lines start with ``#``)."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return HsNomenclature.from_codes([row["code"] for row in csv.DictReader(lines)])


@cache
def hs_nomenclature() -> HsNomenclature:
    """The packaged table, read once per process."""
    text = resources.files("refdata").joinpath(_RESOURCE).read_text(encoding="utf-8")
    return load_nomenclature(text)
