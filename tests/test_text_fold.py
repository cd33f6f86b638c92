"""The ASCII fast paths of description matching (refdata/_ipr_marks.py ``tokens``, refdata/_cwc_names.py
``normalise``) give what the general paths (character by character, as before the fast paths) give."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from refdata._cwc_names import _normalised as normalised
from refdata._cwc_names import normalise
from refdata._cwc_schedules import load_schedules
from refdata._ipr_marks import _folded_tokens as folded_tokens
from refdata._ipr_marks import find_marks, key_prefixes, mark_key, tokens
from refdata._ipr_register import load_register

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


# --- runs of words: a run that begins no key is not extended (refdata/_ipr_marks.py, refdata/_cwc_names.py) ---

REGISTER = load_register()
MARK_WORDS = [w for right in REGISTER for w in right.brand.split()] + ["ZEN", "TRA", "Z.E.N", "rn", "vv", "o"]
CHEMICAL_WORDS = [w for c in load_schedules().chemicals[:40] for w in c.name.replace(":", " ").split()][:200]


def texts(words: list[str]) -> st.SearchStrategy[str]:
    word = st.sampled_from(words) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
    return st.lists(word, max_size=12).flatmap(
        lambda chosen: st.sampled_from([" ", "-", ", ", "."]).map(lambda sep: sep.join(chosen)))


@given(texts(MARK_WORDS))
def test_marks_are_found_as_by_trying_every_run_of_words(text: str) -> None:
    keys: dict[str, list[int]] = {}
    for index, right in enumerate(REGISTER):
        keys.setdefault(mark_key(right.brand), []).append(index)
    words = tokens(text)
    every_run = [(index, text[words[i].start:words[j].end]) for i in range(len(words)) for j in range(i, len(words))
                 for index in keys.get("".join(w.folded for w in words[i:j + 1]), ())]
    assert find_marks(keys, text) == every_run
    assert find_marks(keys, text, prefixes=key_prefixes(keys)) == every_run


@given(texts(CHEMICAL_WORDS))
def test_chemical_names_are_found_as_by_trying_every_run_of_words(text: str) -> None:
    index = load_schedules().names
    words = normalise(text).split()
    keys = index._keys
    every_run: list[Any] = []
    for i in range(len(words)):
        for j in range(i, len(words)):
            hit = keys.get("".join(words[i:j + 1]))
            if hit is not None and all(hit[1] is not v for _, v in every_run):
                every_run.append(hit)
    assert index.find(text)[:len(every_run)] == every_run
