"""Replay: write records again, into their own topic or a shadow topic (``nsw ops replay``).

Selections: every record of one submission on ``nsw.submissions``; an offset range of one partition; or
a time range of a topic (``offsets_for_times``). Records keep their key, value and headers, gain
``nsw-replayed-from: topic/partition/offset``, and go to the partition they came from when the target
has it.

Idempotency. Replaying into the hub's own topics must never make an agency decide a version twice or
the trader receive a second release response. Before writing a record of a topic the hub consumes,
the aggregator's state for its submission (last record for the key in ``nsw.aggregator.state``) is
read, and ``replay_guard`` (pure) skips the record when:

- its version is superseded by a newer version, or the submission was cancelled;
- ``nsw.submissions``: that version was answered, or an agency has already decided it;
- ``nsw.agency.<a>.requests``: agency ``a`` has already decided that version (or it was answered);
- ``nsw.agency.<a>.decisions`` and ``nsw.routing``: that version was answered or ``a`` decided it
  (an older decision replayed after a newer one would change the answer);
- ``nsw.responses``, the changelogs, the DLQ and the idempotency topic are never replayed in place
  (a second release response; overwritten state; use ``nsw ops dlq redrive`` for dead letters).

``force=True`` writes regardless. Into a topic the hub does not read (a shadow topic) nothing is skipped.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from broker._aggregate import AggregateState, early_decision
from broker._envelope import SUBMISSION_HEADER, VERSION_HEADER, InMessage, OutMessage
from broker._topics import (
    AGGREGATE_STATE,
    DLQ,
    IDEMPOTENCY,
    RESPONSES,
    ROUTER_STATE,
    ROUTING,
    SUBMISSIONS,
    TopicSpec,
)
from broker._view import aggregate_state
from broker.errors import MessageError
from bus import (
    ensure_topics,
    existing_partition_counts,
    key_partition,
    offset_bounds,
    offsets_at,
    read_range,
    read_to_end,
    send_all,
)
from ops.errors import OpsConfigError, OpsError
from schemas import NSWSchemaError, registry

__all__ = [
    "REPLAYED_FROM_HEADER",
    "ByOffsets",
    "BySubmission",
    "ByTime",
    "ReplayItem",
    "ReplayReport",
    "aggregator_states",
    "parse_time",
    "replay",
    "replay_guard",
    "select",
]

REPLAYED_FROM_HEADER: Final = "nsw-replayed-from"
_REQUESTS = re.compile(r"^nsw\.agency\.(?P<agency>[^.]+)\.requests$")
_DECISIONS = re.compile(r"^nsw\.agency\.(?P<agency>[^.]+)\.decisions$")
#: Topics that are never written again in place: why.
_NEVER_IN_PLACE: Final = {
    RESPONSES: "would issue a second release response",
    AGGREGATE_STATE: "would overwrite the aggregator's state",
    ROUTER_STATE: "would overwrite the router's state",
    IDEMPOTENCY: "would overwrite stored Idempotency-Key answers",
    DLQ: "dead letters go back with `nsw ops dlq redrive`",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BySubmission:
    """Every record of one submission on ``nsw.submissions``."""

    submission_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ByOffsets:
    """Offsets ``from_offset`` to ``to_offset`` (both included) of one partition."""

    topic: str
    partition: int
    from_offset: int
    to_offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ByTime:
    """Records with a timestamp in [since, until) (epoch ms), on every partition or one."""

    topic: str
    since_ms: int
    until_ms: int | None = None
    partition: int | None = None


Selection = BySubmission | ByOffsets | ByTime
ReplayStatus = Literal["sent", "would-send", "skipped"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayItem:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: str | None
    submission_id: str | None
    version: int | None
    target: str
    status: ReplayStatus
    reason: str = ""
    written: tuple[int, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "partition": self.partition, "offset": self.offset, "timestamp": self.timestamp,
            "key": self.key, "submission_id": self.submission_id, "version": self.version, "target": self.target,
            "status": self.status, "reason": self.reason,
            "written": None if self.written is None else {"partition": self.written[0], "offset": self.written[1]},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    items: tuple[ReplayItem, ...]
    dry_run: bool

    @property
    def sent(self) -> int:
        return sum(1 for i in self.items if i.status == "sent")

    @property
    def skipped(self) -> int:
        return sum(1 for i in self.items if i.status == "skipped")

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "sent": self.sent, "skipped": self.skipped,
                "would_send": sum(1 for i in self.items if i.status == "would-send"),
                "items": [i.as_dict() for i in self.items]}


def parse_time(text: str) -> int:
    """ISO 8601 (``2025-05-01T10:00``, ``...Z``, ``...+08:00``) as epoch ms; a naive time is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OpsConfigError(f"not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def identify(message: InMessage) -> tuple[str | None, int | None, dict[str, Any] | None]:
    """(submission id, version, decoded record or None) from headers, else from the Avro value."""
    sid_raw, version_raw = message.header(SUBMISSION_HEADER), message.header(VERSION_HEADER)
    record: dict[str, Any] | None
    try:
        record = registry().decode(message.value)[1]
    except NSWSchemaError:
        record = None
    sid = sid_raw.decode() if sid_raw else (record or {}).get("submission_id")
    if sid is None and message.key:
        sid = message.key.decode("utf-8", "replace")
    version: int | None = None
    if version_raw and version_raw.isdigit():
        version = int(version_raw)
    elif record is not None and isinstance(record.get("version"), int):
        version = record["version"]
    return sid, version, record


def _decided(state: AggregateState, agency: str, version: int) -> bool:
    waiting = [early_decision(e) for e in state["early"]]
    decisions = [d for d in (*state["decisions"].values(), *waiting) if d["agency"] == agency]
    return any(d["version"] >= version for d in decisions)


def replay_guard(target: str, version: int | None, state: AggregateState | None) -> str | None:
    """Pure: why writing a record of ``version`` to hub topic ``target`` would repeat work (None: it would not).

    ``target`` must be a topic the hub consumes or owns; shadow topics are never guarded.
    """
    if target in _NEVER_IN_PLACE:
        return _NEVER_IN_PLACE[target]
    if version is None or state is None:
        return None  # nothing decided about an unknown submission: its records may flow again
    current = state["version"]
    if current > version:
        return f"superseded: version {current} is current"
    if state["status"] == "cancelled" and current >= version:
        return "the declaration was cancelled"
    response = state["response"]
    if response is not None and response["version"] == version:
        return (f"version {version} already answered (response {response['response_version']}, "
                f"{response['function_code']} {response['outcome']})")
    agency_topic = _REQUESTS.match(target) or _DECISIONS.match(target)
    agency = agency_topic.group("agency") if agency_topic else None
    if agency is not None:
        if _decided(state, agency, version):
            return f"{agency} already decided version {version}"
        return None
    if target == SUBMISSIONS:
        waiting = [early_decision(e) for e in state["early"]]
        deciders = sorted({d["agency"] for d in (*state["decisions"].values(), *waiting) if d["version"] >= version})
        if deciders:
            return f"version {version} already decided by {', '.join(deciders)}"
    return None


def is_hub_topic(topic: str) -> bool:
    return (topic in (SUBMISSIONS, ROUTING) or topic in _NEVER_IN_PLACE
            or bool(_REQUESTS.match(topic) or _DECISIONS.match(topic)))


async def aggregator_states(bootstrap: str, submission_ids: Iterable[str]) -> dict[str, AggregateState]:
    """The aggregator's last state of each submission, reading only the partitions their keys hash to."""
    wanted = set(submission_ids)
    if not wanted:
        return {}
    counts = await existing_partition_counts(bootstrap, [AGGREGATE_STATE])
    if AGGREGATE_STATE not in counts:
        return {}
    partitions = {key_partition(sid.encode(), counts[AGGREGATE_STATE]) for sid in wanted}
    states: dict[str, AggregateState] = {}

    def keep(message: InMessage) -> None:
        key = message.key.decode() if message.key else None
        if key not in wanted:
            return
        if message.value:
            # A malformed record (the hub's readers report it) says nothing about the submission.
            with contextlib.suppress(orjson.JSONDecodeError, MessageError):
                states[key] = aggregate_state(message.value)
        else:
            states.pop(key, None)

    await read_to_end(bootstrap, [(AGGREGATE_STATE, p) for p in sorted(partitions)], keep)
    return states


async def tail_ranges(
    bootstrap: str, topic: str, partitions: int, last: int
) -> list[tuple[str, int, int | None, int | None]]:
    """Ranges covering about the ``last`` offsets of each partition of ``topic``."""
    bounds = await offset_bounds(bootstrap, [(topic, p) for p in range(partitions)])
    return [(topic, p, max(first, end - last), end) for (_, p), (first, end) in sorted(bounds.items())]


async def select(bootstrap: str, selection: Selection) -> list[InMessage]:
    """The records a selection names, in (partition, offset) order."""
    topic = SUBMISSIONS if isinstance(selection, BySubmission) else selection.topic
    counts = await existing_partition_counts(bootstrap, [topic])
    if topic not in counts:
        raise OpsError(f"topic {topic} does not exist")
    found: list[InMessage] = []
    if isinstance(selection, BySubmission):
        key = selection.submission_id.encode()
        partition = key_partition(key, counts[topic])
        await read_range(bootstrap, [(topic, partition, None, None)],
                         lambda m: found.append(m) if m.key == key else None)
    elif isinstance(selection, ByOffsets):
        if not 0 <= selection.partition < counts[topic]:
            raise OpsConfigError(f"{topic} has partitions 0..{counts[topic] - 1}, not {selection.partition}")
        if selection.to_offset < selection.from_offset:
            raise OpsConfigError("--to-offset is before --from-offset")
        await read_range(bootstrap, [(topic, selection.partition, selection.from_offset, selection.to_offset + 1)],
                         found.append)
    else:
        numbers = range(counts[topic]) if selection.partition is None else [selection.partition]
        tps = [(topic, p) for p in numbers]
        starts = await offsets_at(bootstrap, tps, selection.since_ms)
        stops = await offsets_at(bootstrap, tps, selection.until_ms) if selection.until_ms is not None else {}
        ranges = [(t, p, starts[(t, p)], stops.get((t, p))) for t, p in tps if starts[(t, p)] is not None]
        await read_range(bootstrap, ranges, found.append)
    found.sort(key=lambda m: (m.partition, m.offset))
    return found


def replay_message(message: InMessage, target: str) -> OutMessage:
    """The record again, byte for byte, with a header saying where it was replayed from."""
    mark = f"{message.topic}/{message.partition}/{message.offset}".encode()
    headers = (*((n, v) for n, v in message.headers if n != REPLAYED_FROM_HEADER), (REPLAYED_FROM_HEADER, mark))
    return OutMessage(topic=target, key=message.key or b"", value=message.value, headers=headers)


def plan_replay(
    messages: Sequence[InMessage], *, target: str | None, states: Mapping[str, AggregateState], force: bool
) -> list[tuple[InMessage, str, str | None, int | None, str | None]]:
    """Pure: (record, target topic, submission id, version, skip reason or None) for each record."""
    planned = []
    for message in messages:
        into = target or message.topic
        sid, version, _ = identify(message)
        reason = None
        if not force and is_hub_topic(into):
            reason = replay_guard(into, version, states.get(sid) if sid else None)
        planned.append((message, into, sid, version, reason))
    return planned


async def replay(
    bootstrap: str,
    selection: Selection,
    *,
    into: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    replication: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Replay the selected records into their topic (``into=None``) or a shadow topic; see the module doc.

    A shadow topic that does not exist is created with the source topic's partition count.
    ``progress(done, total)`` is called as records are acknowledged.
    """
    messages = await select(bootstrap, selection)
    ids = {sid for m in messages if (sid := identify(m)[0]) is not None}
    needs_state = any(is_hub_topic(into or m.topic) for m in messages) and not force
    states = await aggregator_states(bootstrap, ids) if needs_state else {}
    planned = plan_replay(messages, target=into, states=states, force=force)
    to_send = [(m, t) for m, t, _, _, reason in planned if reason is None]
    written: list[tuple[str, int, int]] = []
    if to_send and not dry_run:
        targets = {t for _, t in to_send}
        counts = await existing_partition_counts(bootstrap, targets | {m.topic for m, _ in to_send})
        missing = sorted(targets - set(counts))
        if missing:
            source_counts = {t: counts[m.topic] for m, t in to_send if t in missing}
            await ensure_topics(bootstrap, [TopicSpec(name=t, partitions=source_counts[t], replication=replication,
                                                      public=False, doc="replay shadow") for t in missing])
            counts.update(source_counts)
        batch: list[tuple[OutMessage, int | None]] = [
            (replay_message(m, t), m.partition if m.partition < counts[t] else None) for m, t in to_send
        ]
        total = len(batch)
        written = await send_all(bootstrap, batch, on_sent=(lambda done: progress(done, total)) if progress else None)
    positions = iter(written)
    items = []
    for message, target, sid, version, reason in planned:
        status: ReplayStatus = "skipped" if reason is not None else ("would-send" if dry_run else "sent")
        where = next(positions) if status == "sent" else None
        items.append(ReplayItem(
            topic=message.topic, partition=message.partition, offset=message.offset, timestamp=message.timestamp,
            key=message.key.decode("utf-8", "replace") if message.key else None, submission_id=sid,
            version=version, target=target, status=status, reason=reason or "",
            written=None if where is None else (where[1], where[2]),
        ))
    return ReplayReport(items=tuple(items), dry_run=dry_run)
