"""The NSW declaration profile: every sample maps to a Submission that Avro-encodes, and the
invalid sample is refused naming the element its manifest entry says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas._avro import registry
from schemas._document import DocumentError
from schemas._mapping import NSW_NAMESPACE
from schemas._records import Submission
from schemas._xml import read_declaration, validate_document

SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples"
MANIFEST: dict[str, dict[str, Any]] = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
VALID = sorted(name for name, entry in MANIFEST.items() if entry["outcome"] is not None)
INVALID = sorted(name for name, entry in MANIFEST.items() if entry["outcome"] is None)


def _read(name: str, **kwargs: Any) -> Submission:
    data = (SAMPLES / name).read_bytes()
    return read_declaration(data, submission_id=f"sub-{name}", received_at=1, **kwargs)


def test_manifest_lists_every_sample_and_only_existing_ones() -> None:
    on_disk = {path.name for path in SAMPLES.glob("*.xml")}
    assert on_disk == set(MANIFEST)
    required = {"plain-goods.xml", "plants-sps.xml", "chemical-cwc.xml", "branded-ipr.xml"}
    required |= {"all-agencies.xml"}
    assert required <= set(VALID)
    assert INVALID
    assert all("invalid" in name for name in INVALID)
    assert all("invalid" not in name for name in VALID)


def test_manifest_entries_have_the_agreed_shape() -> None:
    for name in VALID:
        entry = MANIFEST[name]
        assert entry["outcome"] in {"RELEASE", "HOLD", "REFUSE"}, name
        assert entry["agencies"][0] == "customs", name
        assert set(entry["agencies"]) <= {"customs", "sps", "cwc", "ipr"}, name
        assert entry["note"], name
    for name in INVALID:
        assert MANIFEST[name]["status"] == 422
        assert MANIFEST[name]["element"]


@pytest.mark.parametrize("name", VALID)
def test_valid_sample_maps_and_avro_round_trips(name: str) -> None:
    record = _read(name, version=3)
    assert record["submission_id"] == f"sub-{name}"
    assert record["version"] == 3
    assert record["bundle"] == "nsw"
    assert record["items"]
    encoded = registry().encode("Submission", record)
    full_name, decoded = registry().decode(encoded, expected="Submission")
    assert full_name == "nsw.v1.Submission"
    assert decoded == record


@pytest.mark.parametrize("name", VALID)
def test_validate_document_agrees_with_read_declaration(name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    assert validate_document(data) == read_declaration(data, submission_id="s", received_at=0)["kind"]


@pytest.mark.parametrize("name", VALID)
def test_sample_items_have_hs_commodity_codes(name: str) -> None:
    for item in _read(name)["items"]:
        assert item["commodity_code"].isdigit()
        assert 6 <= len(item["commodity_code"]) <= 10


def test_plain_goods_maps_every_field() -> None:
    record = _read("plain-goods.xml")
    assert record["kind"] == "DECLARATION"
    assert record["function_code"] == "9"
    assert record["trader_reference"] == "LRN-2024-PG-000117"
    assert record["declaration_type"] == "IMZ"
    assert (record["direction"], record["additional_type"]) == ("IMPORT", "SUPPLEMENTARY")
    assert (record["base_currency"], record["rates_date"]) == ("GBP", "2026-12-01")
    assert record["declarant_id"] == "GB123456789000"
    assert record["parties"] == [
        {"role": "DECLARANT", "id": "GB123456789000", "name": "Fastline Fixings Ltd", "country": "GB"},
        {"role": "EXPORTER", "id": None, "name": "Ningbo Haichen Fastener Co Ltd", "country": "CN"},
        {"role": "IMPORTER", "id": "GB123456789000", "name": "Fastline Fixings Ltd", "country": "GB"},
    ]
    assert record["authorisations"] == [{"category_code": "AEOC", "holder_id": "GB123456789000"}]
    assert record["export_country"] == "CN"
    assert record["destination_country"] == "GB"
    assert record["items"] == [
        {
            "sequence": 1,
            "description": "Hexagon head steel screws M8x40, zinc plated, with nuts",
            "commodity_code": "73181500",
            "origin_country": "CN",
            "cas_numbers": [],
            "documents": [],
            "quantity": 1250.5,
            "quantity_unit": "KGM",
            "net_mass_kg": 1250.5,
            "value": 3420.0,
            "currency": "GBP",
            "base_value": 3420.0,  # the base currency is GBP (refdata/exchange-rates.json)
            "cus_code": None,
            "procedure_codes": [],
            "statements": [],
        }
    ]


def test_amendment_has_kind_amendment_and_the_same_reference() -> None:
    original = _read("plain-goods.xml")
    amendment = _read("amendment-plain-goods.xml", version=2)
    assert amendment["kind"] == "AMENDMENT"
    assert amendment["function_code"] == "13"
    assert amendment["trader_reference"] == original["trader_reference"]
    assert amendment["items"][0]["net_mass_kg"] == 1310.25


def test_plants_carry_their_phytosanitary_certificate() -> None:
    item = _read("plants-sps.xml")["items"][0]
    assert item["commodity_code"] == "06029050"
    assert item["documents"] == [{"category_code": "N", "type_code": "851", "id": "NL-PC-2024-0871345",
                                  "status": None}]
    assert item["quantity"] == 1200.0
    assert item["quantity_unit"] == "NAR"
    assert item["origin_country"] == "NL"


def test_chemical_carries_cas_number_and_tonnes_become_kilograms() -> None:
    record = _read("chemical-cwc.xml")
    item = record["items"][0]
    assert item["commodity_code"] == "29221500"
    assert item["cas_numbers"] == ["102-71-6"]
    assert item["net_mass_kg"] == 18400.0
    assert record["export_country"] == "DE"


def test_branded_goods_grams_become_kilograms() -> None:
    record = _read("branded-ipr.xml")
    assert record["declarant_id"] == "GB987654321000"
    item = record["items"][0]
    assert "ZENTRA" in item["description"]
    assert item["net_mass_kg"] == 45.0
    assert item["currency"] == "USD"


def test_all_agencies_sample_has_the_four_items() -> None:
    record = _read("all-agencies.xml")
    assert record["export_country"] == "EG"
    items = record["items"]
    assert [item["sequence"] for item in items] == [1, 2, 3, 4]
    assert [item["commodity_code"] for item in items] == ["73181500", "06031100", "29309098", "91021100"]
    assert items[1]["documents"] == []
    assert items[2]["cas_numbers"] == ["111-48-8"]
    assert "ZENTRA" in items[3]["description"]


@pytest.mark.parametrize("name", INVALID)
def test_invalid_sample_is_refused_naming_the_element(name: str) -> None:
    entry = MANIFEST[name]
    data = (SAMPLES / name).read_bytes()
    with pytest.raises(DocumentError) as caught:
        read_declaration(data, submission_id="s", received_at=0)
    error = caught.value
    assert error.status == entry["status"]
    assert error.type == entry["type"]
    named = [detail for detail in error.errors if entry["element"] in detail.message]
    assert named, error.errors
    assert all(detail.line is not None and detail.line > 0 for detail in named)
    assert named[0].path == entry["path"]
    with pytest.raises(DocumentError):
        validate_document(data)


def test_invalid_sample_error_points_at_the_line_of_the_element() -> None:
    data = (SAMPLES / "invalid-missing-commodity-code.xml").read_bytes()
    commodity_lines = [n for n, line in enumerate(data.splitlines(), start=1) if b"<Commodity>" in line]
    with pytest.raises(DocumentError) as caught:
        validate_document(data)
    assert [detail.line for detail in caught.value.errors] == [commodity_lines[1]]
    assert "{" + NSW_NAMESPACE + "}" not in caught.value.errors[0].message


def test_items_are_sorted_by_sequence_and_text_is_whitespace_collapsed() -> None:
    text = (SAMPLES / "all-agencies.xml").read_text(encoding="utf-8")
    swapped = text.replace("<SequenceNumeric>1</SequenceNumeric>", "<SequenceNumeric>9</SequenceNumeric>")
    swapped = swapped.replace(
        "<Description>Cross recessed steel screws M5x30, black oxide</Description>",
        "<Description>\n   Cross recessed   steel screws\tM5x30 </Description>",
    )
    assert swapped != text
    items = read_declaration(swapped.encode(), submission_id="s", received_at=0)["items"]
    assert [item["sequence"] for item in items] == [2, 3, 4, 9]
    assert items[-1]["description"] == "Cross recessed steel screws M5x30"
