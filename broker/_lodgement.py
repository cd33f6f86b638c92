"""What to do with a lodged document, given what the hub already knows: pure decisions.

A submission is identified by the trader's own reference: the pair (declarant, FunctionalReferenceID),
unique per transaction in the WCO Data Model. Its id is derived from that pair, so a declaration
lodged twice lands on the same id (and the same Kafka partition) and is answered, not processed
twice; an amendment (FunctionCode 13) or cancellation finds the submission it changes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Literal

import orjson

from schemas import Submission, SubmissionKind

_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")

#: Fields that describe the lodgement, not the goods: left out of the content digest.
_ENVELOPE_FIELDS = frozenset({"submission_id", "version", "received_at", "kind", "function_code", "bundle", "trader"})


def submission_id_for(declarant_id: str, trader_reference: str, *, trader: str = "anonymous") -> str:
    """26 characters of Crockford base32 of SHA-256(trader, declarant, reference): stable and opaque.

    The trader (the authenticated API key owner) is part of it: references are unique per trader, and
    one trader can never land on another's submission."""
    digest = hashlib.sha256(f"{trader}\x1f{declarant_id}\x1f{trader_reference}".encode()).digest()[:16]
    return base64.b32encode(digest).decode().rstrip("=").translate(_CROCKFORD)[:26]


def content_digest(submission: Submission) -> str:
    """Digest of what the declaration says about parties and goods (not when or how it was lodged)."""
    content = {k: v for k, v in submission.items() if k not in _ENVELOPE_FIELDS}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


@dataclass(slots=True)
class Known:
    """What the hub knows of a submission's lodgements (from nsw.submissions)."""

    version: int
    digests: dict[int, str] = field(default_factory=dict)
    cancelled: bool = False


Action = Literal["publish", "duplicate", "conflict", "unknown"]


@dataclass(frozen=True, slots=True)
class Lodgement:
    action: Action
    version: int
    reason: str = ""


def same_digest(known: str | None, digest: str) -> bool:
    """Whether a lodged digest is ``digest``; a submission evicted from memory keeps only a prefix of its
    digests (broker/_view.py ``archive_row``), which must then match the start of it."""
    if known is None:
        return False
    return known == digest or (0 < len(known) < len(digest) and digest.startswith(known))


def decide_lodgement(known: Known | None, kind: SubmissionKind, digest: str) -> Lodgement:
    """Publish as a new version, answer as a duplicate, or refuse (conflict, unknown reference)."""
    if kind == "DECLARATION":
        if known is None:
            return Lodgement("publish", 1)
        if same_digest(known.digests.get(1), digest):
            return Lodgement("duplicate", known.version, "this declaration was already lodged")
        return Lodgement(
            "conflict", known.version,
            "this trader reference (FunctionalReferenceID) was already used for a different declaration; "
            "send an amendment (FunctionCode 13) to change it",
        )
    if known is None:
        verb = "amend" if kind == "AMENDMENT" else "cancel"
        return Lodgement("unknown", 0, f"no declaration with this declarant and trader reference to {verb}")
    if known.cancelled:
        if kind == "CANCELLATION":
            return Lodgement("duplicate", known.version, "the declaration is already cancelled")
        return Lodgement("conflict", known.version, "the declaration was cancelled and cannot be amended")
    if kind == "AMENDMENT" and same_digest(known.digests.get(known.version), digest):
        return Lodgement("duplicate", known.version, "this amendment was already lodged")
    return Lodgement("publish", known.version + 1)
