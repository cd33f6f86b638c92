"""How a customs officer reads a mark: trivial variants of a recorded mark are the mark.

Folding, applied alike to the recorded mark and to the goods description:
    - Unicode compatibility forms and accents (NFKD, combining marks dropped): "Zéntra" = "ZENTRA";
    - case;
    - look-alike characters: digits and symbols that stand for letters (0 o, 1 ! | i l, 3 e, 4 @ a, 5 $ s,
      7 t, 8 b), Cyrillic and Greek letters shaped like Latin ones, and letter pairs read as one letter
      (rn m, vv w);
    - spacing and punctuation inside the mark: "Z.E.N.T.R.A", "ZEN-TRA" and "Zen tra" are ZENTRA.
The mark must still be whole: it starts and ends on a word boundary of the description, so "Zentralux" is not
ZENTRA. Matching runs of words are joined, never parts of words.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: Characters read as another letter; "1", "i" and "l" are one letter to a reader who expects a mark.
LOOK_ALIKE: dict[str, str] = {
    "0": "o", "1": "l", "!": "l", "|": "l", "i": "l", "3": "e", "4": "a", "@": "a", "5": "s", "$": "s",
    "7": "t", "8": "b",
    # Cyrillic letters shaped like Latin ones (lower case after casefold)
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u0451": "e", "\u043a": "k", "\u043c": "m", "\u043d": "h",
    "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0442": "t", "\u0443": "y", "\u0445": "x", "\u0456": "l",
    "\u0458": "j", "\u0455": "s",
    # Greek letters shaped like Latin ones
    "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b9": "l", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o",
    "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x",
}
PAIRS = (("rn", "m"), ("vv", "w"))


@functools.lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """The folded letters of one character ("" for a separator or a combining mark); cached, as every
    character of every goods description passes here (a pure function of one character)."""
    out = []
    for c in unicodedata.normalize("NFKD", char).casefold():
        if unicodedata.combining(c):
            continue
        c = LOOK_ALIKE.get(c, c)  # noqa: PLW2901 - the folded form replaces the character
        if c.isalnum():
            out.append(c)
    return "".join(out)


def _pairs(text: str) -> str:
    for pair, letter in PAIRS:
        text = text.replace(pair, letter)
    return text


@dataclass(frozen=True, slots=True)
class Token:
    """A word of a description, folded, with where it stands in the original text."""

    folded: str
    start: int
    end: int


def tokens(text: str) -> list[Token]:
    """The folded words of ``text``: runs of characters that fold to letters or digits."""
    return _ascii_tokens(text) if text.isascii() else _folded_tokens(text)


def _folded_tokens(text: str) -> list[Token]:
    """``tokens`` character by character: any text."""
    found: list[Token] = []
    current: list[str] = []
    start = 0
    for index, char in enumerate(text):
        folded = _fold_char(char)
        if folded:
            if not current:
                start = index
            current.append(folded)
        elif current:
            found.append(Token(_pairs("".join(current)), start, index))
            current = []
    if current:
        found.append(Token(_pairs("".join(current)), start, len(text)))
    return found


#: Each ASCII character folded (``_fold_char``: one character or none), a separator as NUL: folding an ASCII text
#: keeps every word where it stands, so one translation and one scan find the same tokens as ``tokens``.
_ASCII_FOLD: Final = str.maketrans({chr(c): _fold_char(chr(c)) or "\0" for c in range(128)})
_ASCII_RUN: Final = re.compile("[^\0]+")


def _ascii_tokens(text: str) -> list[Token]:
    return [Token(_pairs(run.group()), run.start(), run.end())
            for run in _ASCII_RUN.finditer(text.translate(_ASCII_FOLD))]


def mark_key(mark: str) -> str:
    """The folded form of a mark, separators dropped: what a description must spell, word-aligned."""
    return _pairs("".join(_fold_char(c) for c in mark))


def key_prefixes(keys: Iterable[str]) -> frozenset[str]:
    """Every non-empty prefix of every key: a run of words whose folded text is none of them starts no mark, so
    ``find_marks`` stops extending it (build once per set of keys)."""
    return frozenset(key[:end] for key in keys for end in range(1, len(key) + 1))


def find_marks(keys: dict[str, list[int]], text: str, *, prefixes: frozenset[str] | None = None
               ) -> list[tuple[int, str]]:
    """(index, text as written) for every key of ``keys`` spelt by a run of whole words of ``text``; ``keys``
    maps a folded mark to the indexes it stands for; ``prefixes`` is ``key_prefixes(keys)`` (made here when not
    given)."""
    words = tokens(text)
    starts = prefixes if prefixes is not None else key_prefixes(keys)
    found: list[tuple[int, str]] = []
    for i, first in enumerate(words):
        joined = ""
        for word in words[i:]:
            joined += word.folded
            if joined not in starts:
                break  # no key begins so: no longer run of words spells one
            for index in keys.get(joined, ()):
                found.append((index, text[first.start : word.end]))
    return found
