"""Trader Avro submissions: single-object encoding, writer schemas found by fingerprint, schema
evolution by Avro resolution, the same canonical record as XML, the same business rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas._avro import registry
from schemas._avro_submission import (
    CURRENT_VERSION,
    HEADER_LEN,
    TraderSchemas,
    encode_avro_submission,
    read_avro_submission,
    sample_avro,
    trader_record,
    trader_schemas,
)
from schemas._document import DocumentError
from schemas._records import Submission
from schemas._xml import read_declaration

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "schemas" / "samples"
AVRO = ROOT / "schemas" / "avro"
MANIFEST: dict[str, dict[str, Any]] = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
VALID = sorted(name for name, entry in MANIFEST.items() if entry["outcome"] is not None)


def _raw(version: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((AVRO / "trader" / f"{version}.avsc").read_text(encoding="utf-8"))
    return loaded


def _xml(name: str) -> Submission:
    return read_declaration((SAMPLES / name).read_bytes(), submission_id="sub-9", received_at=42, version=2)


def _avro(data: bytes, schemas: TraderSchemas | None = None) -> Submission:
    return read_avro_submission(
        data, submission_id="sub-9", received_at=42, version=2, max_bytes=100_000, schemas=schemas
    )


def _refused(data: bytes, schemas: TraderSchemas | None = None) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        _avro(data, schemas)
    return caught.value


# --------------------------------------------------------------------------- schemas and samples


def test_reader_schema_is_the_newest_trader_version() -> None:
    current = json.loads((AVRO / "DeclarationSubmission.avsc").read_text(encoding="utf-8"))
    schemas = trader_schemas()
    assert schemas.reader.fingerprint == schemas.get(CURRENT_VERSION).fingerprint
    assert current["namespace"] == "nsw.v1"
    assert current["name"] == "DeclarationSubmission"
    hub_fields = {"submission_id", "version", "received_at", "bundle", "kind"}
    assert not hub_fields & {f["name"] for f in current["fields"]}
    assert [w.version for w in schemas.writers] == ["v1", "v2"]
    assert schemas.get("v1").fingerprint != schemas.get("v2").fingerprint


def test_fingerprint_is_crc64_avro_of_the_canonical_form_little_endian() -> None:
    data = encode_avro_submission(_xml("plain-goods.xml"), "v1")
    canonical = to_parsing_canonical_form(_raw("v1"))
    assert data[:2] == b"\xc3\x01"
    assert data[2:HEADER_LEN] == bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@pytest.mark.parametrize("name", VALID)
def test_avro_and_xml_declarations_give_the_same_canonical_record(name: str) -> None:
    from_xml = _xml(name)
    committed = (SAMPLES / name).with_suffix(".avro").read_bytes()
    assert committed == sample_avro((SAMPLES / name).read_bytes())  # regenerate: python -m schemas._avro_submission
    from_avro = _avro(committed)
    assert from_avro == from_xml  # bundle "nsw" for both: one profile, two syntaxes
    assert registry().decode(registry().encode("Submission", from_avro))[1] == from_avro


def test_v1_cannot_carry_cas_numbers() -> None:
    with pytest.raises(ValueError, match="cas_numbers"):
        encode_avro_submission(_xml("chemical-cwc.xml"), "v1")


# --------------------------------------------------------------------------- evolution


def test_forward_compatible_older_writer_lacking_a_reader_field_with_default_is_read() -> None:
    record = _xml("plain-goods.xml")
    from_v1 = _avro(encode_avro_submission(record, "v1"))
    assert "cas_numbers" not in {f["name"] for f in _raw("v1")["fields"][-1]["type"]["items"]["fields"]}
    assert from_v1 == record
    assert from_v1["items"][0]["cas_numbers"] == []


def _v3() -> dict[str, Any]:
    newer = copy.deepcopy(_raw("v2"))
    newer["fields"].insert(4, {"name": "transport_mode", "type": ["null", "string"], "default": None})
    newer["fields"][-1]["type"]["items"]["fields"].append(
        {"name": "supplementary_units", "type": ["null", "double"], "default": None}
    )
    return newer


def test_backward_compatible_newer_writer_with_new_optional_fields_is_read() -> None:
    schemas = trader_schemas().with_writer("v3", _v3())
    record = _xml("plants-sps.xml")
    content = trader_record(record) | {"transport_mode": "4"}
    content["items"] = [item | {"supplementary_units": 12.0} for item in content["items"]]
    data = encode_avro_submission(content, "v3", schemas=schemas)
    assert _avro(data, schemas) == record  # the fields the hub does not know are skipped
    error = _refused(data)  # the packaged hub has not registered v3
    assert (error.type, error.status) == ("unknown-schema", 422)
    assert data[2:HEADER_LEN].hex() in error.errors[0].message
    assert "v1 (" in error.errors[0].message


def test_type_change_on_a_required_field_is_schema_incompatible() -> None:
    changed = copy.deepcopy(_raw("v2"))
    changed["fields"][1]["type"] = "int"  # trader_reference: string -> int
    schemas = trader_schemas().with_writer("v3-bad", changed)
    content = trader_record(_xml("plain-goods.xml")) | {"trader_reference": 117}
    error = _refused(encode_avro_submission(content, "v3-bad", schemas=schemas), schemas)
    assert (error.type, error.status) == ("schema-incompatible", 422)
    (detail,) = error.errors
    assert detail.message == (
        "trader schema v3-bad: field /trader_reference: the writer's int cannot be read as the reader's string"
    )
    assert detail.line is None


def test_removed_field_without_default_is_schema_incompatible() -> None:
    removed = copy.deepcopy(_raw("v2"))
    removed["fields"] = [f for f in removed["fields"] if f["name"] != "declarant_id"]
    schemas = trader_schemas().with_writer("v3-bad", removed)
    error = _refused(encode_avro_submission(_xml("plain-goods.xml"), "v3-bad", schemas=schemas), schemas)
    assert error.type == "schema-incompatible"
    assert "/declarant_id" in error.errors[0].message
    assert "no default" in error.errors[0].message


def test_nested_incompatibility_names_the_nested_field() -> None:
    changed = copy.deepcopy(_raw("v2"))
    item_fields = changed["fields"][-1]["type"]["items"]["fields"]
    next(f for f in item_fields if f["name"] == "quantity")["type"] = ["null", "string"]
    schemas = trader_schemas().with_writer("v3-bad", changed)
    content = trader_record(_xml("plain-goods.xml"))
    content["items"] = [item | {"quantity": "1250.5"} for item in content["items"]]
    error = _refused(encode_avro_submission(content, "v3-bad", schemas=schemas), schemas)
    assert error.type == "schema-incompatible"
    assert "field /items[]/quantity" in error.errors[0].message


def test_promotion_int_to_double_is_compatible() -> None:
    promoted = copy.deepcopy(_raw("v2"))
    item_fields = promoted["fields"][-1]["type"]["items"]["fields"]
    next(f for f in item_fields if f["name"] == "value")["type"] = ["null", "int"]
    schemas = trader_schemas().with_writer("v3-int", promoted)
    content = trader_record(_xml("plain-goods.xml"))
    content["items"] = [item | {"value": 3420} for item in content["items"]]
    assert _avro(encode_avro_submission(content, "v3-int", schemas=schemas), schemas)["items"][0]["value"] == 3420.0


# --------------------------------------------------------------------------- bad bodies and rules


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc3\x01abc", b"<MetaData/>", b"\xc3\x02" + bytes(8) + b"\x00"],
    ids=["empty", "short", "xml", "wrong-marker"],
)
def test_not_single_object_encoding_is_corrupt_avro(data: bytes) -> None:
    error = _refused(data)
    assert (error.type, error.status) == ("corrupt-avro", 400)


def test_truncated_or_padded_body_is_corrupt_avro() -> None:
    data = (SAMPLES / "plain-goods.avro").read_bytes()
    for broken in (data[:-5], data + b"\x00\x00", data[:HEADER_LEN] + b"\xff" * 40):
        error = _refused(broken)
        assert (error.type, error.status) == ("corrupt-avro", 400), broken


def test_too_large() -> None:
    data = (SAMPLES / "plain-goods.avro").read_bytes()
    with pytest.raises(DocumentError) as caught:
        read_avro_submission(data, submission_id="s", received_at=1, max_bytes=len(data) - 1)
    assert (caught.value.type, caught.value.status) == ("too-large", 413)


def _with_items(**changes: Any) -> bytes:
    content = trader_record(_xml("all-agencies.xml"))
    for index, values in changes.items():
        position = int(index.removeprefix("i")) - 1
        content["items"][position] = content["items"][position] | values
    return encode_avro_submission(content)


def test_business_rules_apply_with_field_paths() -> None:
    data = _with_items(
        i1={"commodity_code": "73189900"},
        i2={"sequence": 1, "cas_numbers": ["102-71-5"]},
        i3={"commodity_code": "12AB"},
    )
    error = _refused(data)
    assert (error.type, error.status) == ("business-rule", 422)
    paths = [detail.path for detail in error.errors]
    assert paths == [
        "/items[1]/commodity_code",
        "/items[2]/sequence",
        "/items[2]/cas_numbers[1]",
        "/items[3]/commodity_code",
    ]
    assert "unknown HS code" in error.errors[0].message
    assert all(detail.line is None for detail in error.errors)


def test_kind_comes_from_function_and_type_codes() -> None:
    record = _xml("plain-goods.xml")
    amendment = _avro(encode_avro_submission(record | {"function_code": "13"}))
    assert amendment["kind"] == "AMENDMENT"
    cancellation = _avro(encode_avro_submission(record | {"function_code": "13", "declaration_type": "INV"}))
    assert cancellation["kind"] == "CANCELLATION"
    error = _refused(encode_avro_submission(record | {"function_code": "7"}))
    assert (error.type, error.errors[0].path) == ("unknown-message-kind", "/function_code")
