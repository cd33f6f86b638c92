"""Trace one submission through the hub (``nsw ops trace ID``).

Every keyed hub topic is partitioned by submission id with Kafka's default (murmur2) partitioner, so
only the one partition the id hashes to is read per topic; the DLQ (one partition, keys as they came)
is scanned whole. Steps are ordered by the time the step happened: the record's own event time
(received, routed / requested, decided, issued, state updated) when it is a hub record, else the Kafka
timestamp. The router stamps the plan and its requests with one clock reading, so the plan sorts before
its requests; ties keep the pipeline's order (submission, routing, request, decision, response, state).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from broker._envelope import SCHEMA_HEADER, SUBMISSION_HEADER, VERSION_HEADER, InMessage, header
from broker._topics import AGGREGATE_STATE, DLQ, RESPONSES, ROUTING, SUBMISSIONS, decisions_topic, requests_topic
from bus import existing_partition_counts, key_partition, read_range
from schemas import AGENCIES, NSWSchemaError, registry

__all__ = ["TraceStep", "describe", "trace", "trace_topics"]

_AGENCY_TOPIC: Final = re.compile(r"^nsw\.agency\.(?P<agency>[^.]+)\.(?P<kind>requests|decisions)$")
_RANK: Final = {"submitted": 0, "routed": 1, "requested": 2, "decided": 3, "responded": 4, "state": 5,
                "dead-lettered": 6, "record": 7}


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceStep:
    at: int  # epoch ms the step happened (event time, else Kafka timestamp)
    kafka_timestamp: int
    topic: str
    partition: int
    offset: int
    step: str
    version: int | None
    agency: str | None
    detail: str
    since_previous_ms: int = 0
    since_first_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kafka_timestamp": self.kafka_timestamp, "topic": self.topic,
                "partition": self.partition, "offset": self.offset, "step": self.step, "version": self.version,
                "agency": self.agency, "detail": self.detail, "since_previous_ms": self.since_previous_ms,
                "since_first_ms": self.since_first_ms}


def trace_topics(agencies: Sequence[str] = AGENCIES) -> list[str]:
    """The topics a submission passes through, in pipeline order."""
    return [SUBMISSIONS, ROUTING, *(requests_topic(a) for a in agencies), *(decisions_topic(a) for a in agencies),
            RESPONSES, AGGREGATE_STATE, DLQ]


def _avro(value: bytes) -> dict[str, Any] | None:
    try:
        return registry().decode(value)[1]
    except NSWSchemaError:
        return None


def describe(message: InMessage) -> TraceStep:
    """Pure: one record as a trace step (what happened, when, for which version and agency; no payload)."""
    base: dict[str, Any] = {"kafka_timestamp": message.timestamp, "topic": message.topic,
                            "partition": message.partition, "offset": message.offset}
    if message.topic == DLQ:
        error = (message.header("nsw-error-type") or b"?").decode("utf-8", "replace")
        source = (message.header("nsw-source-topic") or b"?").decode("utf-8", "replace")
        service = (message.header("nsw-service") or b"?").decode("utf-8", "replace")
        return TraceStep(at=message.timestamp, step="dead-lettered", version=None, agency=None,
                         detail=f"{error} in {service} (from {source})", **base)
    if message.topic == AGGREGATE_STATE:
        if not message.value:
            return TraceStep(at=message.timestamp, step="state", version=None, agency=None, detail="deleted", **base)
        try:
            state = orjson.loads(message.value)
        except orjson.JSONDecodeError:
            state = None
        if not isinstance(state, dict):
            return TraceStep(at=message.timestamp, step="state", version=None, agency=None,
                             detail="malformed record (skipped by the hub)", **base)
        pending = [r["agency"] for r in (state.get("plan") or {}).get("agencies", [])
                   if r["agency"] not in state.get("decisions", {})]
        detail = state.get("status", "?") + (f", waiting for {', '.join(pending)}" if pending else "")
        return TraceStep(at=state.get("updated_at") or message.timestamp, step="state",
                         version=state.get("version"), agency=None, detail=detail, **base)
    record = _avro(message.value)
    agency_topic = _AGENCY_TOPIC.match(message.topic)
    if record is None:
        # A schema this build does not know (or bytes that are no record): say so from the headers alone.
        step = {SUBMISSIONS: "submitted", ROUTING: "routed", RESPONSES: "responded"}.get(message.topic, "record")
        if agency_topic:
            step = "requested" if agency_topic.group("kind") == "requests" else "decided"
        version_raw = message.header(VERSION_HEADER)
        schema = (message.header(SCHEMA_HEADER) or b"no nsw-schema header").decode("utf-8", "replace")
        return TraceStep(at=message.timestamp, step=step,
                         version=int(version_raw) if version_raw and version_raw.isdigit() else None,
                         agency=agency_topic.group("agency") if agency_topic else None,
                         detail=f"{len(message.value)} bytes not decodable here ({schema})", **base)
    version = record.get("version")
    if message.topic == SUBMISSIONS:
        return TraceStep(at=record["received_at"], step="submitted", version=version, agency=None,
                         detail=f"{record['kind']}, {len(record['items'])} item(s)", **base)
    if message.topic == ROUTING:
        agencies = ", ".join(r["agency"] + (f" (carried from v{r['carried_from_version']})"
                                            if r.get("carried_from_version") is not None else "")
                             for r in record["agencies"])
        return TraceStep(at=record["routed_at"], step="routed", version=version, agency=None,
                         detail=f"{record.get('kind') or 'DECLARATION'} to {agencies or 'no agency'}", **base)
    if agency_topic and agency_topic.group("kind") == "requests":
        return TraceStep(at=record["requested_at"], step="requested", version=version, agency=record["agency"],
                         detail=f"{record.get('kind') or 'DECLARATION'}, {len(record['items'])} item(s)", **base)
    if agency_topic:
        outcomes = "/".join(sorted({i["outcome"] for i in record["items"]})) or "no items"
        return TraceStep(at=record["decided_at"], step="decided", version=version, agency=record["agency"],
                         detail=outcomes, **base)
    if message.topic == RESPONSES:
        return TraceStep(at=record["issued_at"], step="responded", version=version, agency=None,
                         detail=f"{record['function_code']} {record['outcome']} "
                                f"(response {record['response_version']})", **base)
    return TraceStep(at=message.timestamp, step="record", version=version, agency=None, detail="", **base)


def order(steps: Sequence[TraceStep]) -> list[TraceStep]:
    """Pure: steps by time (pipeline order on ties), with the time since the previous step and the first."""
    ranked = sorted(steps, key=lambda s: (s.at, _RANK.get(s.step, 9), s.topic, s.offset))
    if not ranked:
        return []
    first = previous = ranked[0].at
    out = []
    for step in ranked:
        out.append(TraceStep(**{**step.as_dict(), "since_previous_ms": step.at - previous,
                                "since_first_ms": step.at - first}))
        previous = step.at
    return out


async def trace(bootstrap: str, submission_id: str, *, agencies: Sequence[str] = AGENCIES) -> list[TraceStep]:
    """Every committed record about ``submission_id`` on the hub's topics, in the order things happened."""
    key = submission_id.encode()
    topics = trace_topics(agencies)
    counts = await existing_partition_counts(bootstrap, topics)
    ranges: list[tuple[str, int, int | None, int | None]] = []
    for topic in topics:
        if topic not in counts:
            continue
        if topic == DLQ:
            ranges += [(topic, p, None, None) for p in range(counts[topic])]
        else:
            ranges.append((topic, key_partition(key, counts[topic]), None, None))
    found: list[InMessage] = []

    def keep(message: InMessage) -> None:
        if message.key == key or (message.topic == DLQ and header(message.headers, SUBMISSION_HEADER) == key):
            found.append(message)

    await read_range(bootstrap, ranges, keep)
    return order([describe(m) for m in found])
