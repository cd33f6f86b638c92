"""The ASCII fast paths of description matching (refdata/_ipr_marks.py ``tokens``, refdata/_cwc_names.py
``normalise``) give what the general paths (character by character, as before the fast paths) give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from refdata._cwc_names import _normalised as normalised
from refdata._cwc_names import normalise
from refdata._ipr_marks import _folded_tokens as folded_tokens
from refdata._ipr_marks import tokens

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
