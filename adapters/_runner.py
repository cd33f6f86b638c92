"""Topic-mode adapter runner: consume an agency's requests, decide with its engine, publish the decision.

The reference engines are pure; this module adds the Kafka edge and the clock. A real agency
system replaces the engine by consuming ``nsw.agency.<agency>.requests`` itself and producing to
``nsw.agency.<agency>.decisions`` (see README "Topic contract").
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import structlog

from adapters._engine import DecisionEngine
from broker._clock import now_ms
from broker._envelope import InMessage, OutMessage, avro_message, decode
from broker._topics import DLQ, decisions_topic, requests_topic
from bus import Handler, ProcessorSpec
from schemas import AgencyDecision, AgencyRequest, ItemDecision

log = structlog.get_logger("nsw.adapter")


def reference_number(agency: str, request_id: str) -> str:
    """The reference engine's case number, e.g. ``IPR-5F2C09A1D3``: stable for a request, so a replay quotes
    the same number to the trader."""
    return f"{agency.upper()[:3]}-{hashlib.sha256(request_id.encode()).hexdigest()[:10].upper()}"


def _item(item: ItemDecision) -> ItemDecision:
    return {"sequence": item["sequence"], "outcome": item["outcome"], "code": item["code"], "reason": item["reason"],
            "hold_reason": item.get("hold_reason"), "valid_until": item.get("valid_until"),
            "selected_by": list(item.get("selected_by", ()))}


def decision_message(agency: str, decision: AgencyDecision) -> OutMessage:
    """``decision`` on the agency's decisions topic, kept decoded for the aggregation the fused core hands it to
    in the same step (``broker._envelope``: decode once). Kept in the schema's form, every field in its order, as
    decoding the bytes gives it; the bytes are those of ``decision`` itself (Avro writes an absent field's
    default)."""
    canonical: AgencyDecision = {
        "decision_id": decision["decision_id"], "submission_id": decision["submission_id"],
        "version": decision["version"], "agency": decision["agency"], "decided_at": decision["decided_at"],
        "items": [_item(i) for i in decision["items"]], "agency_reference": decision.get("agency_reference"),
        "request_id": decision.get("request_id"), "decided_by": decision.get("decided_by")}
    return avro_message(decisions_topic(agency), "AgencyDecision", canonical, carry=True)


class AdapterRunner:
    def __init__(self, engine: DecisionEngine, *, clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self._clock = clock

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        request: AgencyRequest = decode(message, "AgencyRequest")  # type: ignore[assignment]
        now = self._clock()
        structlog.contextvars.bind_contextvars(
            submission_id=request["submission_id"], version=request["version"], agency=self.engine.agency
        )
        if request.get("kind") == "CANCELLATION":
            log.info("cancelled_by_hub")  # the reference engine keeps no work in progress to stop
            return []
        items = self.engine.decide(request, today=datetime.fromtimestamp(now / 1000, UTC).date())
        decision: AgencyDecision = {
            # Stable id: a replayed request yields the same decision id, so duplicates are recognisable.
            "decision_id": f"{request['request_id']}:ref",
            "submission_id": request["submission_id"],
            "version": request["version"],
            "agency": self.engine.agency,
            "decided_at": now,
            "items": items,
            "agency_reference": reference_number(self.engine.agency, request["request_id"]),
            "request_id": request["request_id"],
        }
        log.info("decided", outcomes=sorted({i["outcome"] for i in items}), items=len(items))
        return [decision_message(self.engine.agency, decision)]


@runtime_checkable
class TimedHandler(Protocol):
    """A handler with more inputs than its requests, state to restore on assignment and a timer (the IPR
    adapter's TRIPS Art. 55 clock)."""

    extra_topics: tuple[str, ...]
    latest_only: frozenset[str]

    def __call__(self, message: InMessage) -> Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]: ...

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None: ...

    def tick(self, partition: int, now: int) -> Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]: ...


def adapter_spec(agency: str, handler: Handler) -> ProcessorSpec:
    """The adapter service of ``agency`` around ``handler`` (reference engine, HTTP bridge, or a timed
    handler that also reads ``extra_topics`` and ticks)."""
    if isinstance(handler, TimedHandler):
        return ProcessorSpec(
            service=f"adapter-{agency}", group_id=f"nsw-adapter-{agency}",
            topics=(requests_topic(agency), *handler.extra_topics), transactional_prefix=f"nsw-adapter-{agency}",
            handler=handler, dlq=DLQ, on_assign=handler.on_assign, on_tick=handler.tick,
            latest_only=handler.latest_only)
    return ProcessorSpec(
        service=f"adapter-{agency}",
        group_id=f"nsw-adapter-{agency}",
        topics=(requests_topic(agency),),
        transactional_prefix=f"nsw-adapter-{agency}",
        handler=handler,
        dlq=DLQ,
    )
