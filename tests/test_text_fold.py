"""The ASCII fast paths of description matching (refdata/_ipr_marks.py ``tokens``, refdata/_cwc_names.py
``normalise``) give what the character-by-character folding gives; the reference implementations here are the
general paths as they were before the fast paths."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from refdata._cwc_names import _TOKEN, GREEK, normalise
from refdata._ipr_marks import Token, _fold_char, _pairs, tokens


def folded_tokens(text: str) -> list[Token]:
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


def normalised(text: str) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    spelt = "".join(f" {GREEK[c]} " if c in GREEK else c for c in plain.casefold())
    return " ".join(_TOKEN.findall(spelt))


ASCII = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=60)


@given(ASCII)
def test_ascii_descriptions_fold_to_the_same_tokens(text: str) -> None:
    assert tokens(text) == folded_tokens(text)


@given(ASCII)
def test_ascii_descriptions_normalise_to_the_same_names(text: str) -> None:
    assert normalise(text) == normalised(text)


def test_the_examples_of_the_module_docstrings_still_hold() -> None:
    assert [t.folded for t in tokens("Z.E.N-TRA 5neakers rn0del")] == ["z", "e", "n", "tra", "sneakers", "model"]
    assert tokens("Zéntra shoes") == folded_tokens("Zéntra shoes")  # not ASCII: the general path
    assert normalise("N,N-Dimethyl \u03b1-tabun") == "n n dimethyl alpha tabun"
    assert normalise("Sarin, 1 l") == normalised("Sarin, 1 l")
