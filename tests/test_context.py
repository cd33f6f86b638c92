"""The declaration's context, pure: what the declaration type says, chemicals in free text, base values."""

from __future__ import annotations

import pytest

from refdata import declaration_types, exchange_rates
from schemas import BundleSet, read_submission
from schemas._context import cas_numbers_in
from tests.conftest import CDS_EXAMPLES, SAMPLES, hub_bundles


@pytest.mark.parametrize(
    ("code", "direction", "category"),
    [("IMA", "IMPORT", "FRONTIER"), ("IMD", "IMPORT", "PRE_LODGED"), ("EXK", "EXPORT", "SIMPLIFIED_PRE_LODGED"),
     ("IMJ", "IMPORT", "SIMPLIFIED"), ("IMZ", "IMPORT", "SUPPLEMENTARY"), ("IMQ", "IMPORT", "SUPPLEMENTARY"),
     ("COJ", "OTHER", "SIMPLIFIED"), ("INV", "", ""), ("EXW", "EXPORT", "OTHER")],
)
def test_the_declaration_type_gives_direction_and_category(code: str, direction: str, category: str) -> None:
    types = declaration_types()
    assert (types.direction(code), types.category(code)) == (direction, category)


def test_cas_numbers_are_found_in_text_only_with_a_valid_check_digit() -> None:
    text = "Triethanolamine (CAS 102-71-6), not 102-71-5; sarin 107-44-8 and again 102-71-6; 2024-11-30"
    assert cas_numbers_in(text) == ["102-71-6", "107-44-8"]
    assert cas_numbers_in(None) == []


def test_values_convert_to_the_base_currency() -> None:
    rates = exchange_rates()
    assert rates.to_base(127.0, "USD") == 100.0
    assert rates.to_base(100.0, None) == 100.0  # no currency: the base one
    assert rates.to_base(100.0, "XXX") is None  # unknown: no guess


def test_a_cds_declaration_keeps_its_context() -> None:
    """A UK CDS export with a CUS code: type, procedures, document status, CUS number."""
    path = CDS_EXAMPLES / "export-cus-code.xml"
    record = read_submission(path.read_bytes(), bundles=hub_bundles(), submission_id="S", received_at=0)
    assert (record["direction"], record["additional_type"]) == ("EXPORT", "FRONTIER")
    item = record["items"][0]
    assert item["cus_code"] == "0010164-4"
    assert item["procedure_codes"][0] == "1040"
    assert "AE" in [d["status"] for d in item["documents"]]


def test_a_chemical_named_with_its_cas_number_in_the_description_is_found() -> None:
    text = (SAMPLES / "plain-goods.xml").read_text(encoding="utf-8")
    text = text.replace("Hexagon head steel screws M8x40, zinc plated, with nuts",
                        "Isopropyl methylphosphonofluoridate (sarin), CAS 107-44-8, 2 x 1 l")
    record = read_submission(text.encode(), bundles=BundleSet.default(), submission_id="S", received_at=0)
    assert record["items"][0]["cas_numbers"] == ["107-44-8"]
