"""The aggregator service: plans and decisions in, release responses out, state in a changelog.

State lives in the compacted topic ``nsw.aggregator.state`` (key = submission id), written in the
same transaction as the responses and the consumed offsets, and read back for the assigned
partitions whenever partitions are assigned. Nothing exists only in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import orjson
import structlog

from broker._aggregate import DOCUMENT_HOLDS, AggregateState, apply_decision, apply_plan, new_state
from broker._envelope import (
    CONTENT_TYPE_HEADER,
    JSON_CONTENT_TYPE,
    SUBMISSION_HEADER,
    InMessage,
    OutMessage,
    avro_message,
    decode,
)
from broker._kafka import ProcessorSpec, read_to_end
from broker._topics import AGGREGATE_STATE, DLQ, RESPONSES, ROUTING, decisions_topic
from schemas import AgencyDecision, ReleaseResponse, RoutingPlan

log = structlog.get_logger("nsw.aggregator")


def _now_ms() -> int:
    return int(time.time() * 1000)


def state_message(state: AggregateState) -> OutMessage:
    sid = state["submission_id"].encode()
    return OutMessage(
        topic=AGGREGATE_STATE,
        key=sid,
        value=orjson.dumps(state),
        headers=((SUBMISSION_HEADER, sid), (CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE)),
    )


class Aggregator:
    def __init__(
        self,
        *,
        bootstrap: str,
        agencies: tuple[str, ...],
        documents_codes: frozenset[str] = DOCUMENT_HOLDS,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._bootstrap = bootstrap
        self._decision_topics = {decisions_topic(a) for a in agencies}
        self._documents_codes = documents_codes
        self._clock = clock
        self.states: dict[str, AggregateState] = {}

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        """Rebuild the state of the assigned partitions from the changelog."""
        partitions = {p for _, p in assigned}
        self.states.clear()

        def load(message: InMessage) -> None:
            if message.key is None:
                return
            key = message.key.decode()
            if message.value:
                self.states[key] = orjson.loads(message.value)
            else:
                self.states.pop(key, None)

        count = await read_to_end(self._bootstrap, [(AGGREGATE_STATE, p) for p in sorted(partitions)], load)
        log.info("state_restored", partitions=sorted(partitions), records=count, submissions=len(self.states))

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        now = self._clock()
        response: ReleaseResponse | None
        if message.topic == ROUTING:
            plan: RoutingPlan = decode(message, "RoutingPlan")  # type: ignore[assignment]
            state = self._state(plan["submission_id"])
            structlog.contextvars.bind_contextvars(submission_id=plan["submission_id"], version=plan["version"])
            response = apply_plan(state, plan, now=now, documents_codes=self._documents_codes)
        elif message.topic in self._decision_topics:
            decision: AgencyDecision = decode(message, "AgencyDecision")  # type: ignore[assignment]
            state = self._state(decision["submission_id"])
            structlog.contextvars.bind_contextvars(
                submission_id=decision["submission_id"], version=decision["version"], agency=decision["agency"]
            )
            response = apply_decision(state, decision, now=now, documents_codes=self._documents_codes)
        else:
            raise ValueError(f"aggregator does not read {message.topic}")
        out = [state_message(state)]
        if response is not None:
            out.insert(0, avro_message(RESPONSES, "ReleaseResponse", response))
            log.info("responded", outcome=response["outcome"], response_version=response["response_version"],
                     latency_ms=now - response["received_at"])
        return out

    def _state(self, submission_id: str) -> AggregateState:
        state = self.states.get(submission_id)
        if state is None:
            state = self.states[submission_id] = new_state(submission_id)
        return state


def aggregator_spec(aggregator: Aggregator, *, instance: str, agencies: tuple[str, ...]) -> ProcessorSpec:
    return ProcessorSpec(
        service="aggregator",
        group_id="nsw-aggregator",
        topics=(ROUTING, *(decisions_topic(a) for a in agencies)),
        transactional_prefix="nsw-aggregator",
        handler=aggregator.handle,
        dlq=DLQ,
        on_assign=aggregator.on_assign,
    )
