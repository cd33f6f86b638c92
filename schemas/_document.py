"""Errors about a posted XML document, precise enough to answer the trader.

    NSWSchemaError (ValueError)       schemas/errors.py, never retriable
    └── DocumentError                 the document was refused; ``type`` says why, ``errors`` where

A refused document is the sender's problem and the same bytes fail again, so nothing here is
retriable. Each ``type`` maps to one HTTP status so the ingress (and ``nsw validate``) can answer
without its own table: 400 when the bytes are not a usable XML document at all, 413 when they are
too big to look at, 422 when they are XML but not a declaration the hub accepts. Avro
submissions use the same class: ``corrupt-avro`` (400) for bytes that are not a record,
``unknown-schema`` and ``schema-incompatible`` (422) for writer schemas the hub cannot read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from schemas.errors import NSWSchemaError

DocumentErrorType = Literal[
    "not-well-formed",
    "wrong-encoding",
    "unknown-namespace",
    "unknown-message-kind",
    "schema-violation",
    "business-rule",
    "too-large",
    "forbidden-construct",
    "corrupt-avro",
    "unknown-schema",
    "schema-incompatible",
    "limit-exceeded",
]

#: type -> (title, HTTP status) for XML documents. Titles are stable, human-readable summaries
#: (RFC 9457 "title").
DOCUMENT_ERROR_TYPES: Final[dict[DocumentErrorType, tuple[str, int]]] = {
    "not-well-formed": ("The document is not well-formed XML", 400),
    "wrong-encoding": ("The document is not valid UTF-8", 400),
    "forbidden-construct": ("The document uses a construct the hub refuses (DTD or entity declaration)", 400),
    "too-large": ("The document is larger than the hub accepts", 413),
    "unknown-namespace": ("The document's namespace is not one the hub knows", 422),
    "unknown-message-kind": (
        "The document is not a message the hub accepts (declaration, amendment or cancellation)",
        422,
    ),
    "schema-violation": ("The document does not conform to the declaration schema", 422),
    "business-rule": ("The declaration breaks a rule of the declaration profile", 422),
    "limit-exceeded": ("The declaration exceeds a limit of the hub (items, field length, attributes)", 422),
}

#: Refusals specific to Avro submissions (``avro/binary``). Same answer shape; ``path`` is a field
#: path such as ``/items[2]/commodity_code`` and ``line`` is None. Avro documents are refused with
#: the XML types too when they apply (``too-large``, ``business-rule``, ``unknown-message-kind``).
AVRO_ERROR_TYPES: Final[dict[DocumentErrorType, tuple[str, int]]] = {
    "corrupt-avro": ("The body is not an Avro single-object encoded record", 400),
    "unknown-schema": ("The Avro writer schema's fingerprint is not one the hub knows", 422),
    "schema-incompatible": ("The Avro writer schema cannot be resolved into the hub's schema", 422),
}

#: Every refusal type of a posted submission, XML or Avro: the problem+json ``type`` table.
ERROR_TYPES: Final[dict[DocumentErrorType, tuple[str, int]]] = {**DOCUMENT_ERROR_TYPES, **AVRO_ERROR_TYPES}


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One problem in the document: what, on which line, at which element.

    ``path`` has no namespace prefixes and indexes repeated siblings from 1, e.g.
    ``/MetaData/Declaration/GoodsShipment/GovernmentAgencyGoodsItem[2]/Commodity``, so a trader
    can find the element without knowing how the hub names namespaces.
    """

    message: str
    line: int | None
    path: str | None


#: A response listing thousands of errors helps nobody and costs memory; report the first ones.
MAX_REPORTED_ERRORS: Final = 100


class ErrorList(list[ErrorDetail]):
    """Error details up to ``cap``; past it errors are only counted, so nothing is built for them.

    Building a detail can cost a walk of the tree (an element path), and a hostile 5 MB body has
    100,000 errors: ask :meth:`wants` before building one, and append it only then.
    """

    __slots__ = ("cap", "dropped")

    def __init__(self, cap: int = MAX_REPORTED_ERRORS) -> None:
        super().__init__()
        self.cap = cap
        self.dropped = 0

    def wants(self) -> bool:
        """True when the next error's detail will be kept (build and append it); False counts it."""
        if len(self) < self.cap:
            return True
        self.dropped += 1
        return False

    @property
    def total(self) -> int:
        """Errors found: kept and counted."""
        return len(self) + self.dropped


def limited(errors: list[ErrorDetail]) -> tuple[ErrorDetail, ...]:
    """At most MAX_REPORTED_ERRORS details, with a note saying how many were left out."""
    dropped = errors.dropped if isinstance(errors, ErrorList) else 0
    if len(errors) <= MAX_REPORTED_ERRORS and not dropped:
        return tuple(errors)
    kept = errors[:MAX_REPORTED_ERRORS]
    note = ErrorDetail(f"{len(errors) + dropped - len(kept)} further errors not listed", None, None)
    return (*kept, note)


class DocumentError(NSWSchemaError):
    """The hub refused a posted document; answer the sender with ``status`` and ``errors``."""

    type: DocumentErrorType
    title: str
    status: int
    errors: tuple[ErrorDetail, ...]

    def __init__(self, kind: DocumentErrorType, errors: tuple[ErrorDetail, ...]) -> None:
        # ``type`` is the attribute (the problem-details field name); the argument avoids the builtin.
        title, status = ERROR_TYPES[kind]
        first = errors[0].message if errors else title
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{kind}: {first}{more}")
        self.type = kind
        self.title = title
        self.status = status
        self.errors = errors

    def __reduce__(self) -> tuple[Callable[..., DocumentError], tuple[object, ...]]:
        # Validation may run in a process pool; keep the error picklable despite the custom __init__.
        return (DocumentError, (self.type, self.errors))
