"""The aggregator service: plans and decisions in, release responses out, state in a changelog.

State lives in the compacted topic ``nsw.aggregator.state`` (key = submission id), written in the
same transaction as the responses and the consumed offsets, and read back for the assigned
partitions whenever partitions are assigned. Nothing exists only in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

from broker import _metrics as metrics
from broker._aggregate import (
    DOCUMENT_HOLDS,
    FINAL_STATUSES,
    AggregateState,
    EarlyDecision,
    Refusal,
    apply_decision,
    apply_plan,
    early_decision,
    escalate_due,
    expire_early,
    new_state,
)
from broker._clock import now_ms
from broker._envelope import InMessage, OutMessage, avro_message, decode
from broker._state import ChangelogStore, Evicted
from broker._topics import AGGREGATE_STATE, DLQ, RESPONSES, ROUTING, decisions_topic
from broker.errors import DecisionRefusedError
from bus import Bus, ProcessorSpec, dead_letter
from schemas import AgencyDecision, ReleaseResponse, RoutingPlan

log = structlog.get_logger("nsw.aggregator")



def refused_letter(decision: AgencyDecision, refusal: Refusal, *, topic: str, service: str, dlq: str,
                   partition: int = -1, offset: int = -1, timestamp: int = 0) -> OutMessage:
    """A refused decision kept as a dead letter: its Avro record, where it came from, and why it was refused."""
    original = avro_message(topic, "AgencyDecision", decision)
    message = InMessage(topic=topic, partition=partition, offset=offset, timestamp=timestamp, key=original.key,
                        value=original.value, headers=original.headers)
    return dead_letter(message, DecisionRefusedError(refusal), service=service, dlq=dlq)


class Aggregator:
    def __init__(
        self,
        *,
        bus: Bus,
        agencies: tuple[str, ...],
        deadlines: Mapping[str, int] | None = None,
        documents_codes: frozenset[str] = DOCUMENT_HOLDS,
        clock: Callable[[], int] = now_ms,
        retain_seconds: float | None = None,
        max_final: int | None = None,
    ) -> None:
        #: The agency of a decision is the topic it came from, never the record's own field.
        self._decision_topics = {decisions_topic(a): a for a in agencies}
        self._documents_codes = documents_codes
        self._deadlines = dict(deadlines or {})
        self._clock = clock
        #: States changed but not yet written (``defer_state``); None: each output carries its state record.
        self.deferred: dict[str, tuple[AggregateState, int]] | None = None
        self.store: ChangelogStore[AggregateState] = ChangelogStore(
            bus=bus, topic=AGGREGATE_STATE, name="aggregator",
            active=lambda state: state["status"] not in FINAL_STATUSES,  # only open ones have deadlines
            retain_seconds=retain_seconds, max_inactive=max_final,  # final ones leave memory after a while
        )

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        """Rebuild the state of the assigned partitions from the changelog."""
        await self.store.restore({p for _, p in assigned})

    def handle_loading(self, message: InMessage) -> Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]:
        """``handle``, after reading back the state of an evicted submission (the processor's handler).

        Routing plans and decisions are keyed by submission id; only a record for an evicted one waits
        for a read of the changelog, every other is handled at once."""
        sid = message.key.decode() if message.key is not None else None
        if sid is not None and self.store.needs_load(sid):
            return self._load_then_handle(sid, message)
        try:
            return self.handle(message)
        except Evicted as evicted:  # keyed otherwise than by its submission id (an external agency's record)
            return self._load_then_handle(evicted.submission_id, message)

    async def _load_then_handle(self, sid: str, message: InMessage) -> Sequence[OutMessage]:
        await self.store.load(sid)
        return self.handle(message)

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        if message.topic == ROUTING:
            plan: RoutingPlan = decode(message, "RoutingPlan")  # type: ignore[assignment]
            return self.take_plan(plan, partition=message.partition)
        if (agency := self._decision_topics.get(message.topic)) is not None:
            decision: AgencyDecision = decode(message, "AgencyDecision")  # type: ignore[assignment]
            return self.take_decision(decision, agency=agency, partition=message.partition,
                                      source=(message.topic, message.partition, message.offset))
        raise ValueError(f"aggregator does not read {message.topic}")

    def take_plan(self, plan: RoutingPlan, *, partition: int) -> list[OutMessage]:
        """The outputs of one routing plan (the fused core, ``broker._core``, hands it over decoded)."""
        refused: list[tuple[EarlyDecision | AgencyDecision, Refusal]] = []
        state = self._state(plan["submission_id"])
        structlog.contextvars.bind_contextvars(submission_id=plan["submission_id"], version=plan["version"])
        now = self._clock()
        response = apply_plan(state, plan, now=now, documents_codes=self._documents_codes, refused=refused)
        return self._outputs(state, response, refused, partition=partition, now=now)

    def take_decision(self, decision: AgencyDecision, *, agency: str, partition: int,
                      source: tuple[str, int, int]) -> list[OutMessage]:
        """The outputs of one decision of ``agency`` (the topic it came from, never the record's own field).

        Raises DecisionRefusedError (dead-lettered with its reason, state untouched) when it answers nothing."""
        state = self._state(decision["submission_id"])
        structlog.contextvars.bind_contextvars(
            submission_id=decision["submission_id"], version=decision["version"], agency=agency
        )
        now = self._clock()
        response = apply_decision(state, decision, now=now, documents_codes=self._documents_codes,
                                  agency=agency, source=source)
        for item in decision["items"]:
            metrics.DECISIONS.inc(agency, item["outcome"])
        return self._outputs(state, response, [], partition=partition, now=now)

    def _outputs(self, state: AggregateState, response: ReleaseResponse | None,
                 refused: list[tuple[EarlyDecision | AgencyDecision, Refusal]], *, partition: int, now: int
                 ) -> list[OutMessage]:
        if self.deferred is not None:  # the fused core writes it once, at the end of its step (flush)
            self.deferred[state["submission_id"]] = (state, partition)
            out: list[OutMessage] = []
        else:
            out = [self.store.put(state["submission_id"], state, partition=partition)]
        out += [self._refused(entry, refusal, partition=partition) for entry, refusal in refused]
        if response is not None:
            out.insert(0, avro_message(RESPONSES, "ReleaseResponse", response))
            metrics.RESPONSES.inc(response["outcome"])
            metrics.LATENCY.observe(max(0, now - response["received_at"]) / 1000)
            log.info("responded", outcome=response["outcome"], function_code=response["function_code"],
                     response_version=response["response_version"], latency_ms=now - response["received_at"])
        return out

    def _refused(self, entry: EarlyDecision | AgencyDecision, refusal: Refusal, *, partition: int) -> OutMessage:
        """The dead letter of a decision that waited for its plan and does not answer it (or never saw it)."""
        decision = early_decision(entry)
        waited: EarlyDecision | None = entry if "decision" in entry else None  # type: ignore[assignment]
        log.warning("decision_refused", submission_id=decision["submission_id"], version=decision["version"],
                    agency=decision["agency"], refusal=refusal.kind)
        metrics.DEAD_LETTERS.inc("aggregator")
        if waited is None:  # kept before its source was: the agency's topic, no offset
            return refused_letter(decision, refusal, topic=decisions_topic(decision["agency"]), service="aggregator",
                                  dlq=DLQ, partition=partition)
        return refused_letter(decision, refusal, topic=waited["topic"] or decisions_topic(decision["agency"]),
                              service="aggregator", dlq=DLQ, partition=waited["partition"], offset=waited["offset"],
                              timestamp=waited["received_at"])

    def tick(self, partition: int, now: int) -> Sequence[OutMessage]:
        """Escalate agencies past their deadline, and refuse decisions that waited too long for their plan,
        for the submissions of one partition."""
        out = []
        for sid, state in list(self.store.in_partition(partition)):
            expired = expire_early(state, now=now) if state["early"] else []
            for entry in expired:
                out.append(self._refused(entry, Refusal(
                    "no-outstanding-request", f"no routing plan of {sid} version "
                    f"{entry['decision']['version']} came within the waiting time", "/submission_id"),
                    partition=partition))
            if state["plan"] is None and not state["early"]:
                out.append(self.store.delete(sid, partition=partition))  # nothing was ever asked: no trace
                continue
            if self._deadlines and escalate_due(state, now=now, deadlines=self._deadlines):
                log.warning("escalated", submission_id=sid, version=state["version"],
                            agencies=sorted(state.get("escalations", {})))
                out.append(self.store.put(sid, state, partition=partition))
            elif expired:
                out.append(self.store.put(sid, state, partition=partition))
        return out

    def _state(self, submission_id: str) -> AggregateState:
        if self.deferred is not None and (kept := self.deferred.get(submission_id)) is not None:
            return kept[0]
        if self.store.needs_load(submission_id):
            raise Evicted(submission_id)  # before anything is changed: handle_loading reads it back first
        state = self.store.get(submission_id)
        return state if state is not None else new_state(submission_id)

    def defer_state(self) -> None:
        """Keep changed states unwritten until ``flush`` (one changelog record per submission and step, however
        many plans and decisions the step took: the fused core, ``broker._core``)."""
        self.deferred = {}

    def flush(self) -> list[OutMessage]:
        """The changelog records of the states changed since the last flush."""
        if not self.deferred:
            return []
        out = [self.store.put(sid, state, partition=partition) for sid, (state, partition) in self.deferred.items()]
        self.deferred.clear()
        return out


def aggregator_spec(aggregator: Aggregator, *, agencies: tuple[str, ...]) -> ProcessorSpec:
    return ProcessorSpec(
        service="aggregator",
        group_id="nsw-aggregator",
        topics=(ROUTING, *(decisions_topic(a) for a in agencies)),
        transactional_prefix="nsw-aggregator",
        handler=aggregator.handle_loading,
        dlq=DLQ,
        on_assign=aggregator.on_assign,
        on_tick=aggregator.tick,
        latest_only=frozenset({AGGREGATE_STATE}),
    )
