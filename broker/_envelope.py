"""The hub's envelopes: Avro values and the ``nsw-*`` headers on the records of the Kafka layer.

The record values themselves (``InMessage``, ``OutMessage``, ``Headers``) are ``bus._records``'s, named here too
because every handler that reads an envelope takes one.

Headers on every hub message:
    nsw-schema          full name of the Avro writer schema, e.g. ``nsw.v1.Submission``
    nsw-submission-id   the submission id (also the key)
    nsw-version         the submission version, decimal
    nsw-kind            on nsw.submissions: DECLARATION, AMENDMENT or CANCELLATION
    nsw-content-digest  on nsw.submissions: digest of the declared content (duplicate detection)
    nsw-trader          on nsw.submissions: the authenticated trader who lodged it
    content-type        ``avro/binary`` (single-object encoding) or ``application/json``

Decode once: a stage that hands a record to another stage of the same process (the fused core,
``broker._core``: the router's requests to the embedded engines, their decisions to the aggregation) asks
``avro_message(..., carry=True)`` to keep, beside the bytes, what they decode to (``Carried``); ``decode``
returns that instead of decoding the bytes again. The bytes written are the same either way. The kept value
is a JSON snapshot taken when the record is encoded, and every ``decode`` returns a fresh copy of it, so
nothing a stage changes in what it decoded reaches another stage (or the retry of the same one). A record
is carried only when its fields are the schema's, all of them, in its order (what decoding gives); a record
read from a topic carries nothing and is decoded from its bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bus._records import Headers, InMessage, OutMessage, header
from schemas import AvroDecodeError, registry

__all__ = [
    "AVRO_CONTENT_TYPE",
    "CONTENT_TYPE_HEADER",
    "DECLARANT_HEADER",
    "DIGEST_HEADER",
    "JSON_CONTENT_TYPE",
    "KIND_HEADER",
    "SCHEMA_HEADER",
    "SUBMISSION_HEADER",
    "TRADER_HEADER",
    "VERSION_HEADER",
    "Carried",
    "Headers",
    "InMessage",
    "OutMessage",
    "avro_message",
    "decode",
    "header",
]

SCHEMA_HEADER = "nsw-schema"
SUBMISSION_HEADER = "nsw-submission-id"
VERSION_HEADER = "nsw-version"
KIND_HEADER = "nsw-kind"
DIGEST_HEADER = "nsw-content-digest"
TRADER_HEADER = "nsw-trader"
DECLARANT_HEADER = "nsw-declarant"
CONTENT_TYPE_HEADER = "content-type"
AVRO_CONTENT_TYPE = b"avro/binary"
JSON_CONTENT_TYPE = b"application/json"


@dataclass(frozen=True, slots=True)
class Carried:
    """What a record's bytes decode to, kept by the stage that encoded it (see the module docstring)."""

    schema: str  # full name of the writer schema
    snapshot: bytes  # the record as JSON, taken when it was encoded

    def record(self) -> dict[str, Any]:
        """A fresh copy: the caller may change it."""
        value: dict[str, Any] = orjson.loads(self.snapshot)
        return value


#: Field names of each schema, in order, by full name (what a decoded record's keys are).
_FIELDS: dict[str, tuple[str, ...]] = {}


def _fields(schema: Any) -> tuple[str, ...]:
    found = _FIELDS.get(schema.name)
    if found is None:
        found = _FIELDS[schema.name] = tuple(f["name"] for f in schema.parsed["fields"])
    return found


def _carried(schema: Any, record: Mapping[str, Any]) -> Carried | None:
    """The snapshot of ``record``; None when it would not be what its bytes decode to (fields missing, extra
    or out of the schema's order) or cannot be one (a value JSON has no form for)."""
    if tuple(record) != _fields(schema):
        return None
    try:
        return Carried(schema.name, orjson.dumps(record))
    except TypeError:
        return None


def avro_message(topic: str, schema: str, record: Mapping[str, Any], *, extra: Headers = (),
                 carry: bool = False) -> OutMessage:
    """A hub record for ``topic``, keyed by its submission id, Avro single-object encoded; with ``carry`` it
    also keeps what it decodes to, for the next stage of the same step (module docstring)."""
    reg = registry()
    found = reg.get(schema)
    submission_id: str = record["submission_id"]
    headers: Headers = (
        (SCHEMA_HEADER, found.name.encode()),
        (SUBMISSION_HEADER, submission_id.encode()),
        (VERSION_HEADER, str(record["version"]).encode()),
        (CONTENT_TYPE_HEADER, AVRO_CONTENT_TYPE),
        *extra,
    )
    return OutMessage(topic=topic, key=submission_id.encode(), value=reg.encode(schema, record), headers=headers,
                      decoded=_carried(found, record) if carry else None)


def decode(message: InMessage, expected: str | None = None) -> dict[str, Any]:
    """The Avro record in ``message`` (raises schemas.NSWSchemaError when it is not one): a copy of what the
    stage that encoded it kept, when it did and it is of the ``expected`` schema, else decoded from the bytes."""
    carried = message.decoded
    if isinstance(carried, Carried):
        reg = registry()
        if expected is None or reg.get(expected).name == carried.schema:
            return carried.record()
        raise AvroDecodeError(f"expected {reg.get(expected).name}, got {carried.schema}")
    return registry().decode(message.value, expected)[1]
