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

ITEM_V1 = {"sequence": 1, "outcome": "HOLD", "code": "H01", "reason": "N851 missing"}
DECISION_V1 = {"decision_id": "S-1:1:sps:ref", "submission_id": "S-1", "version": 1, "agency": "sps",
               "decided_at": 1_767_225_600_000,
               "items": [ITEM_V1]}


def written_with(version_file: str, record: dict[str, object]) -> bytes:
    """``record`` single-object encoded with an earlier schema, as a producer of that time wrote it."""
    canonical = resources.files("schemas").joinpath("avro", "history", version_file).read_text().strip()
    schema = parse_schema(json.loads(canonical), named_schemas={})
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return MAGIC + bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")) + body.getvalue()


def test_a_decision_written_before_hold_reasons_reads_with_the_defaults() -> None:
    name, decoded = registry().decode(written_with("AgencyDecision.v1.json", DECISION_V1), "AgencyDecision")
    assert name == "nsw.v1.AgencyDecision"
    assert decoded == {**DECISION_V1, "agency_reference": None, "request_id": None,
                       "items": [{**ITEM_V1, "hold_reason": None, "valid_until": None}]}


def test_the_current_schema_is_not_an_earlier_one() -> None:
    old = written_with("AgencyDecision.v1.json", DECISION_V1)
    new = registry().encode("AgencyDecision", DECISION_V1)
    assert old[2:10] != new[2:10]  # a schema change shows in the fingerprint


def test_an_unknown_fingerprint_is_still_refused() -> None:
    data = written_with("AgencyDecision.v1.json", DECISION_V1)
    with pytest.raises(UnknownSchemaError, match="fingerprint"):
        registry().decode(data[:2] + b"\x00" * 8 + data[10:])
