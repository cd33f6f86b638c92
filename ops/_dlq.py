"""Dead letters: list, show and redrive what the hub's services gave up on (``nsw ops dlq``).

A dead letter is the original record (bytes and headers) plus ``nsw-error-*``/``nsw-source-*`` headers
written by ``bus.dead_letter``. Redriving writes the original back to its source topic with the
original headers and ``nsw-redriven-from``, and records the DLQ offset in the compacted topic
``nsw.dlq.redriven`` in the same Kafka transaction: the ledger and the redriven record exist together or
not at all, and a second redrive of the same dead letter is refused (unless forced) from any machine.

Shown values are summaries (schema, submission id, version, sizes): declarations carry personal and
commercial data, so the whole payload is only given when asked for (``payload=True``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from broker._aggregate import AggregateState
from broker._envelope import Headers, InMessage, OutMessage, header
from broker._topics import DLQ, TopicSpec, redrive_targets
from bus import (
    VALUE_OMITTED_HEADER,
    ensure_topics,
    existing_partition_counts,
    offset_bounds,
    read_range,
    send_all,
)
from ops._progress import Progress
from ops._replay import aggregator_states, identify, is_hub_topic, replay_guard, tail_ranges
from ops.errors import OpsConfigError, OpsError
from schemas import AGENCIES, NSWSchemaError, registry

__all__ = [
    "DLQ_LEDGER",
    "REDRIVEN_FROM_HEADER",
    "DeadLetter",
    "RedriveOutcome",
    "get_dead_letter",
    "ledger_spec",
    "list_dead_letters",
    "original_headers",
    "redrive",
    "redrive_message",
    "redriven",
    "refusal",
    "value_summary",
]

DLQ_LEDGER: Final = "nsw.dlq.redriven"
REDRIVEN_FROM_HEADER: Final = "nsw-redriven-from"
REDRIVE_TRANSACTIONAL_ID: Final = "nsw-ops-redrive"

#: Headers added on the way into the DLQ (and by an earlier redrive): dropped when the original goes back.
DLQ_HEADERS: Final = frozenset({
    "nsw-error-type", "nsw-error-message", "nsw-source-topic", "nsw-source-partition", "nsw-source-offset",
    "nsw-service", "nsw-attempts", "nsw-first-failure", "nsw-last-failure", REDRIVEN_FROM_HEADER,
    VALUE_OMITTED_HEADER,
})

#: Fields of a hub record that identify it without saying anything about the trader or the goods.
_SAFE_FIELDS: Final = ("submission_id", "version", "kind", "agency", "response_version", "outcome",
                       "function_code", "request_id", "decision_id", "response_id")


def ledger_spec(*, replication: int = 1) -> TopicSpec:
    return TopicSpec(name=DLQ_LEDGER, partitions=1, replication=replication, cleanup_policy="compact",
                     public=False, extra={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
                     doc="Which dead letters were redriven (JSON), compacted, key = DLQ offset.")


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _int(value: bytes | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """One record of the DLQ, with its failure headers parsed."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    error_type: str
    error_message: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    service: str | None
    attempts: int | None
    first_failure: int | None
    last_failure: int | None
    headers: Headers = field(repr=False)
    value: bytes = field(repr=False)

    @classmethod
    def from_message(cls, message: InMessage) -> DeadLetter:
        h = message.headers
        return cls(
            partition=message.partition, offset=message.offset, timestamp=message.timestamp, key=message.key,
            error_type=_text(header(h, "nsw-error-type")) or "?",
            error_message=_text(header(h, "nsw-error-message")) or "",
            source_topic=_text(header(h, "nsw-source-topic")),
            source_partition=_int(header(h, "nsw-source-partition")),
            source_offset=_int(header(h, "nsw-source-offset")),
            service=_text(header(h, "nsw-service")),
            attempts=_int(header(h, "nsw-attempts")),
            first_failure=_int(header(h, "nsw-first-failure")),
            last_failure=_int(header(h, "nsw-last-failure")),
            headers=message.headers, value=message.value,
        )

    @property
    def ref(self) -> str:
        """The ledger key: the DLQ offset (qualified by partition when the DLQ has more than one)."""
        return str(self.offset) if self.partition == 0 else f"{self.partition}:{self.offset}"

    def as_dict(self, *, payload: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "partition": self.partition, "offset": self.offset, "timestamp": self.timestamp,
            "key": _text(self.key), "error_type": self.error_type, "error_message": self.error_message,
            "source_topic": self.source_topic, "source_partition": self.source_partition,
            "source_offset": self.source_offset, "service": self.service, "attempts": self.attempts,
            "first_failure": self.first_failure, "last_failure": self.last_failure,
            "headers": {name: _text(value) for name, value in self.headers},
            "value": value_summary(self.value),
        }
        if payload:
            out["payload"] = full_payload(self.value)
        return out


def value_summary(value: bytes) -> dict[str, Any]:
    """What a value is, without its personal or commercial content: schema, ids, version, counts, size."""
    summary: dict[str, Any] = {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()[:16]}
    try:
        schema, record = registry().decode(value)
    except NSWSchemaError as exc:
        summary.update(avro=False, reason=str(exc))
        return summary
    summary.update(avro=True, schema=schema)
    summary.update({name: record[name] for name in _SAFE_FIELDS if name in record})
    for name in ("items", "agencies", "decisions"):
        if isinstance(record.get(name), list):
            summary[f"{name}_count"] = len(record[name])
    return summary


def full_payload(value: bytes) -> Any:
    """The whole value (only on request): the decoded Avro record, else text, else base64."""
    try:
        return registry().decode(value)[1]
    except NSWSchemaError:
        pass
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def original_headers(headers: Headers) -> Headers:
    """The record's own headers, without what the DLQ (or an earlier redrive) added."""
    return tuple((name, value) for name, value in headers if name not in DLQ_HEADERS)


def redrive_message(letter: DeadLetter) -> OutMessage:
    """The original record, addressed to its source topic, marked with where it was redriven from."""
    if not letter.source_topic:
        raise OpsError(f"dead letter {letter.ref} has no nsw-source-topic header: cannot tell where it came from")
    headers = (*original_headers(letter.headers), (REDRIVEN_FROM_HEADER, letter.ref.encode()))
    return OutMessage(topic=letter.source_topic, key=letter.key or b"", value=letter.value, headers=headers)


async def _dlq_partitions(bootstrap: str, dlq: str) -> int:
    counts = await existing_partition_counts(bootstrap, [dlq])
    if dlq not in counts:
        raise OpsError(f"topic {dlq} does not exist (has the hub been started? `nsw ops topics create`)")
    return counts[dlq]


async def list_dead_letters(bootstrap: str, *, limit: int = 50, dlq: str = DLQ) -> list[DeadLetter]:
    """The latest ``limit`` dead letters (all partitions), oldest first."""
    if limit < 1:
        raise OpsConfigError("--limit must be at least 1")
    partitions = await _dlq_partitions(bootstrap, dlq)
    # The DLQ is written in the services' transactions, so some offsets are commit markers, not records:
    # widen the window until it holds ``limit`` records or reaches the start of every partition.
    window = 2 * limit
    while True:
        found: list[InMessage] = []
        ranges = await tail_ranges(bootstrap, dlq, partitions, window)
        await read_range(bootstrap, ranges, found.append)
        at_start = all(start == first for (_, _, start, _), first in
                       zip(ranges, await _firsts(bootstrap, dlq, partitions), strict=True))
        if len(found) >= limit or at_start:
            break
        window *= 4
    found.sort(key=lambda m: (m.timestamp, m.partition, m.offset))
    return [DeadLetter.from_message(m) for m in found[-limit:]]


async def _firsts(bootstrap: str, topic: str, partitions: int) -> list[int]:
    bounds = await offset_bounds(bootstrap, [(topic, p) for p in range(partitions)])
    return [bounds[(topic, p)][0] for p in range(partitions)]


async def get_dead_letter(bootstrap: str, offset: int, *, partition: int = 0, dlq: str = DLQ) -> DeadLetter:
    found: list[InMessage] = []
    await _dlq_partitions(bootstrap, dlq)
    await read_range(bootstrap, [(dlq, partition, offset, offset + 1)], found.append)
    if not found:
        raise OpsError(f"no dead letter at {dlq} partition {partition} offset {offset} "
                       "(expired, a transaction marker, or not written yet)")
    return DeadLetter.from_message(found[0])


async def redriven(bootstrap: str, *, ledger: str = DLQ_LEDGER) -> dict[str, dict[str, Any]]:
    """The redrive ledger: DLQ ref -> what was written where and when (empty when never used)."""
    counts = await existing_partition_counts(bootstrap, [ledger])
    entries: dict[str, dict[str, Any]] = {}

    def keep(message: InMessage) -> None:
        if message.key is None:
            return
        if message.value:
            entries[message.key.decode()] = orjson.loads(message.value)
        else:
            entries.pop(message.key.decode(), None)

    await read_range(bootstrap, [(ledger, p, None, None) for p in range(counts.get(ledger, 0))], keep)
    return entries


RedriveStatus = Literal["sent", "would-send", "refused"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RedriveOutcome:
    ref: str
    dlq_offset: int
    key: str | None
    topic: str | None
    status: RedriveStatus
    reason: str = ""
    written: tuple[int, int] | None = None  # (partition, offset) on the source topic

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "dlq_offset": self.dlq_offset, "key": self.key, "topic": self.topic,
                "status": self.status, "reason": self.reason,
                "written": None if self.written is None else {"partition": self.written[0],
                                                              "offset": self.written[1]}}


def _as_source(letter: DeadLetter) -> InMessage:
    return InMessage(topic=letter.source_topic or "", partition=letter.source_partition or 0,
                     offset=letter.source_offset or 0, timestamp=letter.timestamp, key=letter.key,
                     value=letter.value, headers=original_headers(letter.headers))


def refusal(letter: DeadLetter, allowed: frozenset[str]) -> str | None:
    """Pure: why ``letter`` may never be written back, ``--force`` or not (None: it may).

    Its ``nsw-source-topic`` header is only a claim: a record is written back only to a topic the hub's
    services consume (``redrive_targets``), never to a changelog, the key or webhook registries, the audit
    chain or the DLQ. A dead letter whose value was left out (too large for the DLQ) has nothing to send.
    """
    if letter.source_topic and letter.source_topic not in allowed:
        return (f"{letter.source_topic} is not a topic dead letters may be written back to "
                f"(only {', '.join(sorted(allowed))}); never redriven, even with --force")
    omitted = header(letter.headers, VALUE_OMITTED_HEADER)
    if omitted is not None:
        return (f"the original value ({omitted.decode('utf-8', 'replace')}) was too large for the DLQ; it is on "
                f"{letter.source_topic} partition {letter.source_partition} offset {letter.source_offset}")
    return None


def plan_redrive(
    letters: Sequence[DeadLetter],
    ledger: Mapping[str, Mapping[str, Any]],
    *,
    force: bool,
    states: Mapping[str, AggregateState] | None = None,
    allowed: frozenset[str] | None = None,
) -> list[tuple[DeadLetter, OutMessage | None, str]]:
    """Pure: for each dead letter, the record to write (None: refused) and why.

    Refused whatever ``force`` says: a dead letter whose source topic is not on the allow-list
    (``allowed``, by default the hub's own source topics for the standard agencies; see ``refusal``).
    Refused unless ``force``: a dead letter redriven before (the ledger has it), and one the replay guard
    stops (its version already decided or answered, or a topic never written again in place such as
    nsw.responses).
    """
    allowed = redrive_targets(AGENCIES) if allowed is None else allowed
    planned: list[tuple[DeadLetter, OutMessage | None, str]] = []
    for letter in letters:
        never = refusal(letter, allowed)
        if never is not None:
            planned.append((letter, None, never))
            continue
        done = ledger.get(letter.ref)
        if done is not None and not force:
            planned.append((letter, None, f"already redriven to {done.get('topic')} partition "
                                          f"{done.get('partition')} offset {done.get('offset')} (--force to repeat)"))
            continue
        try:
            message = redrive_message(letter)
        except OpsError as exc:
            planned.append((letter, None, str(exc)))
            continue
        if not force and is_hub_topic(message.topic):
            sid, version, _ = identify(_as_source(letter))
            why = replay_guard(message.topic, version, (states or {}).get(sid) if sid else None)
            if why is not None:
                planned.append((letter, None, f"{why} (--force to redrive anyway)"))
                continue
        planned.append((letter, message, "forced: redriven before" if done is not None else ""))
    return planned


async def redrive(
    bootstrap: str,
    *,
    offsets: Sequence[int] | None,
    dry_run: bool = False,
    force: bool = False,
    partition: int = 0,
    dlq: str = DLQ,
    ledger: str = DLQ_LEDGER,
    replication: int = 1,
    agencies: tuple[str, ...] = AGENCIES,
) -> list[RedriveOutcome]:
    """Write dead letters back to their source topics (``offsets=None``: every one not yet redriven).

    All records and their ledger entries go in one transaction; ``dry_run`` only says what would be sent.
    Only the hub's own source topics (those of ``agencies``) are written to, ``force`` or not; dead letters
    the replay guard stops (see ``ops._replay``) are refused unless ``force``.
    """
    if offsets is None:
        partitions = await _dlq_partitions(bootstrap, dlq)
        found: list[InMessage] = []
        progress = Progress(f"reading {dlq}")

        def keep(message: InMessage) -> None:
            found.append(message)
            progress.advance()

        await read_range(bootstrap, [(dlq, p, None, None) for p in range(partitions)], keep)
        progress.finish()
        letters = [DeadLetter.from_message(m) for m in found]
    else:
        letters = [await get_dead_letter(bootstrap, o, partition=partition, dlq=dlq) for o in offsets]
    done = await redriven(bootstrap, ledger=ledger)
    ids = {sid for letter in letters if (sid := identify(_as_source(letter))[0]) is not None}
    states = {} if force else await aggregator_states(bootstrap, ids)
    planned = plan_redrive(letters, done, force=force, states=states, allowed=redrive_targets(agencies))
    if offsets is None and not force:
        planned = [p for p in planned if p[0].ref not in done]  # --all: what is left to do
    outcomes: list[RedriveOutcome] = []
    to_send = [(letter, out) for letter, out, _ in planned if out is not None]
    written: dict[str, tuple[int, int]] = {}
    if to_send and not dry_run:
        await ensure_topics(bootstrap, [dataclasses.replace(ledger_spec(replication=replication), name=ledger)])
        counts = await existing_partition_counts(bootstrap, {m.topic for _, m in to_send})
        batch: list[tuple[OutMessage, int | None]] = []
        for letter, out in to_send:
            same = letter.source_partition is not None and 0 <= letter.source_partition < counts.get(out.topic, 0)
            batch.append((out, letter.source_partition if same else None))
        now = int(time.time() * 1000)

        def receipts(positions: list[tuple[str, int, int]]) -> list[tuple[OutMessage, int | None]]:
            out: list[tuple[OutMessage, int | None]] = []
            for (letter, _), (topic, part, off) in zip(to_send, positions, strict=True):
                written[letter.ref] = (part, off)
                entry = {"dlq_topic": dlq, "dlq_partition": letter.partition, "dlq_offset": letter.offset,
                         "topic": topic, "partition": part, "offset": off, "redriven_at": now, "forced": force}
                out.append((OutMessage(topic=ledger, key=letter.ref.encode(), value=orjson.dumps(entry)), None))
            return out

        # The records and their ledger entries in one transaction: both or neither.
        await send_all(bootstrap, batch, transactional_id=REDRIVE_TRANSACTIONAL_ID, then=receipts)
    for letter, message, reason in planned:
        status: RedriveStatus = "refused" if message is None else ("would-send" if dry_run else "sent")
        outcomes.append(RedriveOutcome(ref=letter.ref, dlq_offset=letter.offset, key=_text(letter.key),
                                       topic=letter.source_topic, status=status, reason=reason,
                                       written=written.get(letter.ref)))
    return outcomes
