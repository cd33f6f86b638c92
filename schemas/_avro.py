"""Avro codec for the hub's records: single-object encoding, schemas found by fingerprint.

Every message value on the hub's topics is Avro single-object encoded (marker ``C3 01``, the
8-byte little-endian CRC-64-AVRO fingerprint of the writer schema, then the binary body), so a
consumer can find the writer schema from the bytes alone; producers also set the ``nsw-schema``
header to the record's full name for readers that prefer headers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import fastavro
from fastavro.schema import fingerprint, parse_schema

from schemas._canonical import canonical_form, named_types, self_contained
from schemas._codec import Codec, compile_codec
from schemas.errors import AvroDecodeError, UnknownSchemaError

MAGIC: Final = b"\xc3\x01"
HEADER_LEN: Final = 10

# Dependency order: a schema may only name types defined above it.
_SCHEMA_FILES: Final = (
    "Party",
    "Authorisation",
    "Document",
    "Statement",
    "Item",
    "Submission",
    "RoutingReason",
    "AgencyRequest",
    "ItemDecision",
    "AgencyDecision",
    "AgencyRoute",
    "RoutingPlan",
    "AgencyOutcome",
    "ItemOutcome",
    "ReleaseResponse",
    "InspectionResult",
)

#: Records that travel on topics on their own (the others are nested types).
TOP_LEVEL: Final = ("Submission", "AgencyRequest", "AgencyDecision", "RoutingPlan", "ReleaseResponse",
                    "InspectionResult")


@dataclass(frozen=True, slots=True)
class RecordSchema:
    """One parsed writer schema with what the wire needs to name it."""

    name: str  # full name, e.g. nsw.v1.Submission
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO
    canonical_json: str
    #: For an earlier version of a record: the current schema its records are read as (Avro schema
    #: resolution: fields added since get their defaults). None for the current versions.
    reader: Any = None
    #: The encoder and decoder compiled for this schema (schemas._codec), for the current versions whose types
    #: it handles; None: fastavro only.
    codec: Codec | None = None


@dataclass(frozen=True, slots=True)
class PublishedSchema:
    """A top-level record as ``nsw schemas export`` writes it. ``version`` counts the fingerprints the record
    has been written with (this one included); ``earlier`` are the ones the hub still reads."""

    name: str
    schema: Any  # self-contained JSON: every named type defined where it first appears
    fingerprint: bytes
    version: int
    earlier: tuple[bytes, ...]
    canonical_json: str


def _load_raw(name: str) -> dict[str, Any]:
    text = resources.files("schemas").joinpath("avro").joinpath(f"{name}.avsc").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _defined_names(schema: Any, found: set[str]) -> set[str]:
    """Full names of the named types a schema defines inline."""
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed") and "name" in schema:
            found.add(str(schema["name"]))
        for value in schema.values():
            _defined_names(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _defined_names(value, found)
    return found


def _history(named: Mapping[str, Any]) -> list[RecordSchema]:
    """Earlier versions of the top-level records (``avro/history/<Name>.v<N>.json``, each the parsing
    canonical form a version was written with): records already on the topics stay readable after a
    schema gains fields. Forms that name a nested type without defining it (the hub's canonical forms
    before 2026-12 did so for types nested two levels deep) take it from the current schemas
    (``named``), which is right as long as those nested types did not change."""
    folder = resources.files("schemas").joinpath("avro").joinpath("history")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        canonical = entry.read_text(encoding="utf-8").strip()
        raw: dict[str, Any] = json.loads(canonical)
        defined = _defined_names(raw, set())
        parsed = parse_schema(raw, named_schemas={k: v for k, v in named.items() if k not in defined})
        found.append(RecordSchema(name=str(raw["name"]), parsed=parsed,
                                  fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
                                  canonical_json=canonical))
    return found


class Registry:
    """The schemas the hub knows, by full name and by fingerprint."""

    def __init__(self) -> None:
        named: dict[str, Any] = {}
        self._by_name: dict[str, RecordSchema] = {}
        self._by_fingerprint: dict[bytes, RecordSchema] = {}
        raws = {short: _load_raw(short) for short in _SCHEMA_FILES}
        known: dict[str, Any] = {}
        for raw in raws.values():
            named_types(raw, found=known)
        self._known = known
        for short, raw in raws.items():
            parsed = parse_schema(raw, named_schemas=named)
            full = f"{raw['namespace']}.{raw['name']}"
            # The canonical form of the self-contained schema (every named type defined at its first use), as
            # Apache Avro's SchemaNormalization computes it from the published files alone.
            canonical = canonical_form(raw, known)
            record = RecordSchema(
                name=full,
                parsed=parsed,
                fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),  # little-endian
                canonical_json=canonical,
                codec=compile_codec(parsed),
            )
            self._by_name[full] = record
            self._by_name[short] = record
            self._by_fingerprint[record.fingerprint] = record
        self._earlier: dict[str, list[bytes]] = {}
        for earlier in _history(named):
            current = self._by_name[earlier.name]
            self._earlier.setdefault(earlier.name, []).append(earlier.fingerprint)
            if earlier.fingerprint not in self._by_fingerprint:
                self._by_fingerprint[earlier.fingerprint] = RecordSchema(
                    name=earlier.name, parsed=earlier.parsed, fingerprint=earlier.fingerprint,
                    canonical_json=earlier.canonical_json, reader=current.parsed)

    def published(self) -> list[PublishedSchema]:
        """The top-level records as another team takes them: self-contained JSON, fingerprint, history."""
        out = []
        for short in TOP_LEVEL:
            current = self.get(short)
            earlier = self._earlier.get(current.name, [])
            out.append(PublishedSchema(name=current.name, schema=self_contained(self._known[current.name],
                                                                                self._known),
                                       fingerprint=current.fingerprint, version=len(earlier) + 1,
                                       earlier=tuple(earlier), canonical_json=current.canonical_json))
        return out

    def get(self, name: str) -> RecordSchema:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownSchemaError(f"no Avro schema named {name!r}") from None

    def by_fingerprint(self, fp: bytes) -> RecordSchema:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UnknownSchemaError(f"no Avro schema with fingerprint {fp.hex()}") from None

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``record`` with the schema called ``name``."""
        schema = self.get(name)
        if schema.codec is not None:
            encoded = schema.codec.encode(record, MAGIC + schema.fingerprint)
            if encoded is not None:
                return encoded
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(schema.fingerprint)
        fastavro.schemaless_writer(buf, schema.parsed, record)
        return buf.getvalue()

    def decode(self, data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode single-object bytes; return (full schema name, record)."""
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise AvroDecodeError("not Avro single-object encoding (missing C3 01 marker)")
        schema = self.by_fingerprint(data[2:HEADER_LEN])
        if expected is not None and schema.name != self.get(expected).name:
            raise AvroDecodeError(f"expected {self.get(expected).name}, got {schema.name}")
        if schema.codec is not None:
            fast = schema.codec.decode(data, HEADER_LEN)
            if fast is not None:
                return schema.name, fast
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_LEN:]), schema.parsed, schema.reader)
        except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            raise AvroDecodeError(f"corrupt {schema.name} body: {exc}") from exc
        if not isinstance(record, dict):
            raise AvroDecodeError(f"{schema.name} body is not a record")
        return schema.name, record


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry (parsing the schemas once)."""
    global _REGISTRY  # noqa: PLW0603 - a lazily built, immutable singleton
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY
