"""Finding a scheduled chemical by name in free text, and a declared concentration.

Names come from the schedules (``schedules.csv``, from the shared research data): each ``:``-separated part of
a row's name is a name ("Sarin", "O-Isopropyl methylphosphonofluoridate"), a trailing parenthesis is a synonym
("(benzilic acid)"), family labels shared by several rows ("Sulfur mustards") count in the singular too.

Normalisation, so that the way a trader types a name does not hide it: Unicode compatibility forms and accents
(NFKD), Greek letters written out (the letter alpha and the word "alpha" are the same prefix), case, and every
punctuation mark or space (``N,N-Dimethyl`` = ``n,n dimethyl`` = ``NN-dimethyl``). Matching stays whole-word:
a name must start and end on a word boundary of the text ("tabun" is found in "tabun, 1 l", never in "stabunx").

Short code names (VX, BZ, DF, QL, HN1, PFIB) are ordinary letters in other contexts; they match only as written
(upper case, a word of their own), and the two-letter ones only on goods classified as chemicals (HS chapters
28, 29, 38) or not classified at all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Generic, TypeVar

#: Greek small letters (U+03B1..U+03C9, final sigma included) by their English names, as chemists write them out.
GREEK = {chr(0x3B1 + n): name for n, name in enumerate((
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu",
    "xi", "omicron", "pi", "rho", "sigma", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"))}
_TOKEN = re.compile(r"[a-z0-9]+")
_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,3}$")
_CODE_TOKEN = re.compile(r"[A-Za-z0-9]+")
_TRAILING = re.compile(r"\s+(?:\(\*\)|\[[^\]]*\]|and corresponding [a-z ]+ salts)\s*$")
_SYNONYM = re.compile(r"^(?P<name>.*\S)\s+\((?P<synonym>[A-Za-z][A-Za-z ,-]{3,})\)$")
_EXEMPT = re.compile(r"^EXEMPT from \S+ - ")
_PERCENT = re.compile(r"(?<![\d.,])(\d{1,3}(?:[.,]\d+)?)\s*(?:%|per\s?cent\b|percent\b)", re.IGNORECASE)
#: A percentage is a concentration only when the text says so, after it ("30 % solution", "12.5 % w/w",
#: "1 % in water") or before it ("concentration 30 %", "purity: 99 %"); "5 % water" or "discount 5 %" are not.
_AFTER = re.compile(r"\s*(?:\(?w/w\)?|wt\b|by\s+(?:weight|mass)|solution|mixture|in\b|aqueous|conc)", re.IGNORECASE)
_BEFORE = re.compile(r"(?:concentration|conc\.?|assay|purity|content|strength)\s*(?:[:=]|of)?\s*$", re.IGNORECASE)
CHEMICAL_CHAPTERS = ("28", "29", "38")


def normalise(text: str) -> str:
    """``text`` in matching form: accents dropped, Greek letters spelt out, lower case, one space between
    alphanumeric runs."""
    if text.isascii():  # most descriptions: nothing to decompose, no accent, no Greek letter; the same result
        return " ".join(_TOKEN.findall(text.lower()))
    return _normalised(text)


def _normalised(text: str) -> str:
    """``normalise`` character by character: any text."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    spelt = "".join(f" {GREEK[c]} " if c in GREEK else c for c in plain.casefold())
    return " ".join(_TOKEN.findall(spelt))


def names_of(raw_name: str) -> list[str]:
    """The names a schedules row answers to (see the module docstring)."""
    text = _EXEMPT.sub("", raw_name.strip())
    found: list[str] = []
    for raw in text.split(": "):
        part = _TRAILING.sub("", _TRAILING.sub("", raw.strip()))
        synonym = _SYNONYM.match(part)
        if synonym:
            found += [synonym["name"], synonym["synonym"]]
        elif part and not part.lower().endswith("example"):
            found.append(part)
    return found


T = TypeVar("T")


class NameIndex(Generic[T]):
    """Names to values (schedule rows); ``find`` returns the values named in a text, in text order."""

    __slots__ = ("_codes", "_keys", "_prefixes", "_short_codes")

    def __init__(self, named: Iterable[tuple[str, T]]) -> None:
        keys: dict[str, tuple[str, T]] = {}
        codes: dict[str, tuple[str, T]] = {}
        for name, value in named:
            if _CODE.match(name):
                codes.setdefault(name, (name, value))
                continue
            key = normalise(name).replace(" ", "")
            if len(key) >= 4:
                keys.setdefault(key, (name, value))
        self._keys = keys
        self._codes = codes
        self._short_codes = frozenset(c for c in codes if len(c) == 2)
        #: Every prefix of every key: a run of words that is none of them names nothing, however it goes on.
        self._prefixes = frozenset(key[:end] for key in keys for end in range(1, len(key) + 1))

    def find(self, text: str, *, commodity_code: str = "") -> list[tuple[str, T]]:
        """(name, value) for every name in ``text``; whole words only, each value once."""
        found: list[tuple[str, T]] = []
        tokens = normalise(text).split()
        for i in range(len(tokens)):
            joined = ""
            for token in tokens[i:]:
                joined += token
                if joined not in self._prefixes:
                    break
                hit = self._keys.get(joined)
                if hit is not None and all(hit[1] is not v for _, v in found):
                    found.append(hit)
        chemical = not commodity_code or commodity_code.startswith(CHEMICAL_CHAPTERS)
        for word in _CODE_TOKEN.findall(unicodedata.normalize("NFKC", text)):
            code = self._codes.get(word)
            if code is None or (word in self._short_codes and not chemical):
                continue
            if all(code[1] is not v for _, v in found):
                found.append(code)
        return found


def declared_percent(texts: Iterable[str]) -> float | None:
    """The highest concentration (%) stated in ``texts`` ("30 % solution", "12.5% w/w"), None if none.

    Read the strict way, since a concentration can only relax a control: a percentage counts only when the
    text says it is a concentration (``_AFTER``/``_BEFORE``), and of several the highest is taken (a mixture is
    exempt only when every concentration it states is under the threshold). None means the chemical itself.
    """
    found = [float(m.group(1).replace(",", ".")) for text in texts for m in _PERCENT.finditer(text)
             if _AFTER.match(text, m.end()) or _BEFORE.search(text, 0, m.start())]
    valid = [p for p in found if 0 < p <= 100]
    return max(valid) if valid else None
