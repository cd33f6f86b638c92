"""Records written before a schema gained fields stay readable: the registry knows earlier writer
schemas by fingerprint and resolves them to the current reader schema (Avro defaults fill the gaps)."""

from __future__ import annotations

import io
import json
from importlib import resources

import fastavro
import pytest
from fastavro.schema import fingerprint, parse_schema

from schemas import UnknownSchemaError, registry
from schemas._avro import MAGIC

ITEM = {"sequence": 1, "description": "Live plants", "commodity_code": "06029050", "origin_country": "NL",
        "cas_numbers": [], "documents": [{"category_code": "N", "type_code": "851", "id": "NL-PC-1"}],
        "quantity": None, "quantity_unit": None, "net_mass_kg": 80.5, "value": None, "currency": None}
SAMPLES: dict[str, dict[str, object]] = {
    "Submission": {"submission_id": "S-1", "version": 1, "kind": "DECLARATION", "received_at": 1, "bundle": "nsw",
                   "function_code": "9", "trader_reference": "R", "declaration_type": "IMZ", "declarant_id": "D",
                   "parties": [], "authorisations": [], "export_country": "NL", "destination_country": "GB",
                   "items": [ITEM], "trader": "t"},
    "AgencyRequest": {"request_id": "S-1:1:sps", "submission_id": "S-1", "version": 1, "agency": "sps",
                      "requested_at": 1, "trader_reference": "R", "declaration_type": "IMZ", "declarant_id": "D",
                      "parties": [], "authorisations": [], "export_country": None, "destination_country": None,
                      "items": [ITEM], "reasons": [{"item": 1, "rule": "SPS", "why": "plants"}],
                      "kind": "DECLARATION"},
    "ReleaseResponse": {"response_id": "S-1:1:1", "submission_id": "S-1", "version": 1, "response_version": 1,
                        "issued_at": 2, "received_at": 1, "trader_reference": "R", "declarant_id": "D",
                        "outcome": "HOLD", "function_code": "05",
                        "agencies": [{"agency": "sps", "outcome": "HOLD", "decision_id": "d", "decided_at": 2,
                                      "carried_from_version": None, "agency_reference": None}],
                        "items": [{"sequence": 1, "outcome": "HOLD", "reasons": [
                            {"agency": "sps", "outcome": "HOLD", "code": "H01", "reason": "r",
                             "hold_reason": "INSPECTION", "valid_until": None}]}],
                        "invalidated": False, "trader": "t"},
}
ITEM_V1 = {"sequence": 1, "outcome": "HOLD", "code": "H01", "reason": "N851 missing"}
DECISION_V1 = {"decision_id": "S-1:1:sps:ref", "submission_id": "S-1", "version": 1, "agency": "sps",
               "decided_at": 1_767_225_600_000,
               "items": [ITEM_V1]}


def written_with(version_file: str, record: dict[str, object]) -> bytes:
    """``record`` single-object encoded with an earlier schema, as a producer of that time wrote it."""
    canonical = resources.files("schemas").joinpath("avro", "history", version_file).read_text().strip()
    print_ = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    try:
        schema = parse_schema(json.loads(canonical), named_schemas={})
    except fastavro.schema.UnknownType:  # a form of before 2026-12 that names nested types without defining them
        schema = registry().by_fingerprint(print_).parsed
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return MAGIC + print_ + body.getvalue()


def test_a_decision_written_before_hold_reasons_reads_with_the_defaults() -> None:
    name, decoded = registry().decode(written_with("AgencyDecision.v1.json", DECISION_V1), "AgencyDecision")
    assert name == "nsw.v1.AgencyDecision"
    assert decoded == {**DECISION_V1, "agency_reference": None, "request_id": None, "decided_by": None,
                       "items": [{**ITEM_V1, "hold_reason": None, "valid_until": None, "selected_by": []}]}


DECISION_V3 = {**DECISION_V1, "agency_reference": "SPS/1", "request_id": "S-1:1:sps:n",
               "items": [{**ITEM_V1, "hold_reason": "INSPECTION", "valid_until": None}]}


def test_a_decision_written_before_selected_by_and_decided_by_reads_with_the_defaults() -> None:
    data = written_with("AgencyDecision.v3.json", DECISION_V3)
    assert data[2:10].hex() == "0c57272423cd6658"  # what the hub wrote until the feedback loop (docs/CONTRACT.md)
    _, decoded = registry().decode(data, "AgencyDecision")
    assert decoded == {**DECISION_V3, "decided_by": None,
                       "items": [{**DECISION_V3["items"][0], "selected_by": []}]}  # type: ignore[index]


def test_the_new_fields_travel() -> None:
    record = {**DECISION_V3, "decided_by": "customs/alice",
              "items": [{**DECISION_V3["items"][0], "selected_by": ["RED-FIREWORKS", "RANDOM"]}]}  # type: ignore[index]
    assert registry().decode(registry().encode("AgencyDecision", record), "AgencyDecision")[1] == record


def test_the_current_schema_is_not_an_earlier_one() -> None:
    old = written_with("AgencyDecision.v1.json", DECISION_V1)
    new = registry().encode("AgencyDecision", DECISION_V1)
    assert old[2:10] != new[2:10]  # a schema change shows in the fingerprint


def test_an_unknown_fingerprint_is_still_refused() -> None:
    data = written_with("AgencyDecision.v1.json", DECISION_V1)
    with pytest.raises(UnknownSchemaError, match="fingerprint"):
        registry().decode(data[:2] + b"\x00" * 8 + data[10:])


#: Fingerprints the hub wrote before its canonical forms defined nested types (2026-12): still readable.
LEGACY = {"Submission.v1.json": "01cc41d5b8e26e8e", "AgencyRequest.v1.json": "d226cb1637ef48c0",
          "ReleaseResponse.v2.json": "68bf54c4df8e8866"}


@pytest.mark.parametrize("version_file", sorted(LEGACY))
def test_records_written_with_the_old_fingerprints_stay_readable(version_file: str) -> None:
    name = version_file.split(".", maxsplit=1)[0]
    record = SAMPLES[name]
    data = written_with(version_file, record)
    assert data[2:10].hex() == LEGACY[version_file]
    assert data[2:10] != registry().get(name).fingerprint  # the current one is the specification's
    decoded_name, decoded = registry().decode(data, name)
    assert decoded_name == f"nsw.v1.{name}"
    assert decoded == registry().decode(registry().encode(name, record), name)[1]
