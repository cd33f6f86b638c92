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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bus._records import Headers, InMessage, OutMessage, header
from schemas import registry

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


def avro_message(topic: str, schema: str, record: Mapping[str, Any], *, extra: Headers = ()) -> OutMessage:
    """A hub record for ``topic``, keyed by its submission id, Avro single-object encoded."""
    reg = registry()
    submission_id: str = record["submission_id"]
    headers: Headers = (
        (SCHEMA_HEADER, reg.get(schema).name.encode()),
        (SUBMISSION_HEADER, submission_id.encode()),
        (VERSION_HEADER, str(record["version"]).encode()),
        (CONTENT_TYPE_HEADER, AVRO_CONTENT_TYPE),
        *extra,
    )
    return OutMessage(topic=topic, key=submission_id.encode(), value=reg.encode(schema, record), headers=headers)


def decode(message: InMessage, expected: str | None = None) -> dict[str, Any]:
    """The Avro record in ``message`` (raises schemas.NSWSchemaError when it is not one)."""
    return registry().decode(message.value, expected)[1]
