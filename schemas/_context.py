"""The declaration's context, the same for every bundle: what its type says, chemicals named in its text,
values in the base currency. Pure: a mapped Submission in, the same Submission completed out.

- ``direction`` and ``additional_type`` from the declaration type (``refdata/declaration-types.json``): an
  export is not asked for import certificates, a supplementary declaration is not a new border control;
- CAS registry numbers wherever the declaration writes one (the goods description, additional information:
  CDS has no CAS field), kept only with a valid check digit, added to those the profile carries;
- ``base_value`` of each item with its currency converted by ``refdata/exchange-rates.json``.
"""

from __future__ import annotations

import re
from typing import Final

from refdata import declaration_types, exchange_rates
from schemas._records import AdditionalType, Direction, Item, Submission

_CAS_IN_TEXT: Final = re.compile(r"(?<![\d-])(\d{2,7})-(\d{2})-(\d)(?![\d-])")


def item_texts(item: Item) -> list[str]:
    """The free texts of an item that may name a chemical, a mark or a concentration."""
    return [item["description"], *(s["text"] for s in item.get("statements", ()) if s["text"])]


def cas_check_digit_ok(body: str, middle: str, check: str) -> bool:
    digits = (body + middle)[::-1]
    return sum((n + 1) * int(d) for n, d in enumerate(digits)) % 10 == int(check)


def cas_numbers_in(text: str | None) -> list[str]:
    """Valid CAS registry numbers written in ``text``, in order, once each."""
    found: list[str] = []
    for match in _CAS_IN_TEXT.finditer(text or ""):
        number = match.group(0)
        if cas_check_digit_ok(*match.groups()) and number not in found:
            found.append(number)
    return found


def _item_context(item: Item, *, invoice_currency: str | None) -> None:
    item.setdefault("cus_code", None)
    item.setdefault("procedure_codes", [])
    item.setdefault("statements", [])
    item.setdefault("base_value", None)
    for document in item["documents"]:
        document.setdefault("status", None)
    texts = [item["description"], *(s["text"] for s in item.get("statements", ()))]
    for text in texts:
        for number in cas_numbers_in(text):
            if number not in item["cas_numbers"]:
                item["cas_numbers"].append(number)
    if item["value"] is not None:
        item["base_value"] = exchange_rates().to_base(item["value"], item["currency"] or invoice_currency)


def with_context(submission: Submission) -> Submission:
    """``submission`` with its context filled in (in place, and returned)."""
    types = declaration_types()
    code = submission["declaration_type"]
    direction: Direction = types.direction(code)  # type: ignore[assignment]  # checked when the table loads
    category: AdditionalType = types.category(code)  # type: ignore[assignment]
    submission.setdefault("statements", [])
    submission.setdefault("invoice_currency", None)
    submission["direction"] = direction
    submission["additional_type"] = category
    rates = exchange_rates()
    submission["base_currency"] = rates.base_currency
    submission["rates_date"] = rates.date
    for item in submission["items"]:
        _item_context(item, invoice_currency=submission.get("invoice_currency"))
    for statement in submission.get("statements", ()):
        for number in cas_numbers_in(statement["text"]):
            for item in submission["items"]:  # a declaration-level statement speaks for every item
                if number not in item["cas_numbers"]:
                    item["cas_numbers"].append(number)
    return submission
