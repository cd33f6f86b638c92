"""The fused core: routing, the embedded agencies' engines and the aggregation of a submission in one
transactional step on its partition.

Used when the router, the adapters and the aggregator run in one process (``--only`` holds all three, the
default) and ``NSW_FUSED_CORE`` is not 0. One consumer group (``nsw-core``), one transactional producer per
partition number (``nsw-core-p<n>``). For a submission version the step

1. routes it (``broker._router.Router``, the same pure routing and the same changelog ``nsw.router.state``);
2. hands the plan to the aggregation (``broker._aggregator.Aggregator``, changelog ``nsw.aggregate.state``);
3. runs each embedded agency's engine on its request (the same handler the adapter service runs) and hands
   each decision to the aggregation;

and writes, in one transaction with the consumed offsets: the requests (every agency's, so audit, trace,
external consumers and replay see them as before), the routing plan, the embedded agencies' decisions, both
changelogs, the release response and any dead letter. Decisions of agencies that are not embedded (topic and
http modes, officers' decisions, agency callbacks) arrive through their decisions topics, which the same
group reads pinned to the same partition number, and are aggregated in the same step as the records of that
partition. Deadlines and the IPR Art. 55 clock tick in the same producer's transactions.

What the core wrote and processed in the step that wrote it (the plan, the embedded agencies' requests and
decisions) carries the header ``nsw-core``. The core also reads ``nsw.routing`` and the embedded agencies'
requests topics, but only to take what an operator writes there again (``nsw ops dlq redrive`` copies the
original headers and adds ``nsw-redriven-from``; ``nsw ops replay --force`` adds ``nsw-replayed-from``): a
plan or request written by a router is work already done, by this core or by the separate services of an
earlier run. The separate services, when the core is not fused, skip what carries ``nsw-core``
(``skip_core_processed``): a hub switched from one mode to the other decides nothing twice, provided the
switch happens with the pipeline drained (a request written by a separate router but not yet decided when
the hub restarts fused is not decided; its deadline escalates it).

A batch whose records produce no output at all (the core's own records read back, duplicates) does not get
a transaction of its own: its offsets are committed with the partition's next transaction, or by the timer
after a second of quiet (``ProcessorSpec.defer_empty``). Reading them again after a restart produces
nothing again.

Fusion needs one Kafka principal with the rights of the router, the engines and the aggregator together;
with per-service credentials (``NSW_KAFKA_CREDENTIALS``, least privilege) the hub runs the separate services.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import structlog

from adapters._runner import TimedHandler
from broker import _metrics as metrics
from broker._aggregator import Aggregator
from broker._clock import now_ms
from broker._envelope import InMessage, OutMessage, decode
from broker._router import Router
from broker._state import Evicted
from broker._topics import AGGREGATE_STATE, DLQ, ROUTER_STATE, ROUTING, SUBMISSIONS, decisions_topic, requests_topic
from bus import Handler, ProcessorSpec, RetryPolicy, dead_letter
from schemas import AgencyDecision

__all__ = ["CORE_GROUP", "CORE_HEADER", "CORE_SERVICE", "FusedCore", "core_processed", "core_spec",
           "core_topics", "skip_core_processed"]

log = structlog.get_logger("nsw.core")

CORE_SERVICE: Final = "core"
CORE_GROUP: Final = "nsw-core"
#: On what the fused core wrote and processed in the same step (plan, embedded requests and decisions).
CORE_HEADER: Final = "nsw-core"
#: Added by ``nsw ops dlq redrive`` and ``nsw ops replay`` (``ops._dlq.REDRIVEN_FROM_HEADER``,
#: ``ops._replay.REPLAYED_FROM_HEADER``; ops imports broker, not the reverse): such a copy is new work.
REDRIVEN_HEADER: Final = "nsw-redriven-from"
REPLAYED_HEADER: Final = "nsw-replayed-from"

T = TypeVar("T")


def core_processed(message: InMessage) -> bool:
    """Written by the fused core, which processed it in the step that wrote it (a redriven copy is new work)."""
    return message.header(CORE_HEADER) is not None and not _redriven(message)


def _redriven(message: InMessage) -> bool:
    """Written again by an operator (a redriven dead letter, a replayed record)."""
    return message.header(REDRIVEN_HEADER) is not None or message.header(REPLAYED_HEADER) is not None


_STAMP: Final = (CORE_HEADER, b"1")


def _stamped(out: OutMessage) -> OutMessage:
    # Built directly: ``dataclasses.replace`` walks the fields on every call, and the step stamps ~9 records.
    return OutMessage(out.topic, out.key, out.value, (*out.headers, _STAMP), decoded=out.decoded)


def _engine_decision(decision: AgencyDecision) -> bool:
    """Written by a reference engine (its decision ids: ``<request>:ref``, the IPR clock's ``<request>:art55:..``)."""
    request_id = decision.get("request_id") or ""
    decision_id = decision["decision_id"]
    return bool(request_id) and (decision_id == f"{request_id}:ref" or decision_id.startswith(f"{request_id}:art55:"))


def _as_input(out: OutMessage, partition: int) -> InMessage:
    """An output handed on within the step, as the next stage would have read it (no offset yet), with what
    its value decodes to when the stage that wrote it kept that (``broker._envelope``: decode once)."""
    return InMessage(topic=out.topic, partition=partition, offset=-1, timestamp=now_ms(), key=out.key,
                     value=out.value, headers=out.headers, decoded=out.decoded)


def stage_of(topic: str) -> str:
    """The separate service that reads ``topic`` (the name a dead letter of the fused core gives)."""
    if topic == SUBMISSIONS:
        return "router"
    if topic.startswith("nsw.agency.") and topic.endswith(".requests"):
        return f"adapter-{topic.removeprefix('nsw.agency.').removesuffix('.requests')}"
    return "aggregator"


def core_topics(agencies: Sequence[str], embedded: Sequence[str]) -> tuple[str, ...]:
    """What the core reads: submissions, redrives (plans, the embedded agencies' requests), every decision."""
    return (SUBMISSIONS, ROUTING, *(requests_topic(a) for a in embedded), *(decisions_topic(a) for a in agencies))


def skip_core_processed(spec: ProcessorSpec) -> ProcessorSpec:
    """``spec`` of a separate service (adapter, aggregator) that skips what the fused core already processed."""
    handler = spec.handler

    def handle(message: InMessage) -> Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]:
        return [] if core_processed(message) else handler(message)

    return dataclasses.replace(spec, handler=handle)


class FusedCore:
    """Handler, assignment hook and timer of the fused core (see the module docstring).

    ``engines``: the handler of each embedded agency (``adapters.adapter_handler``), built once per hub.
    """

    def __init__(self, *, router: Router, aggregator: Aggregator, agencies: Sequence[str],
                 engines: Mapping[str, Handler], retry: RetryPolicy | None = None) -> None:
        self.router = router
        self.aggregator = aggregator
        aggregator.defer_state()  # one aggregate-state record per step, written by ``handle`` and ``tick``
        self.engines = dict(engines)
        self._retry = retry if retry is not None else RetryPolicy()
        self._agencies = tuple(agencies)
        self._requests = {requests_topic(a): a for a in self.engines}
        self._decisions = {decisions_topic(a): a for a in agencies}
        self._timed = {a: h for a, h in self.engines.items() if isinstance(h, TimedHandler)}
        self._extra: dict[str, list[tuple[str, TimedHandler]]] = {}
        for agency, handler in self._timed.items():
            for topic in handler.extra_topics:
                self._extra.setdefault(topic, []).append((agency, handler))
        self.dead_lettered = 0

    @property
    def topics(self) -> tuple[str, ...]:
        """Every input, co-partitioned: submissions, redrives, the decisions of every agency, the engines' extras."""
        return tuple(dict.fromkeys((*core_topics(self._agencies, list(self.engines)), *self._extra)))

    @property
    def latest_only(self) -> frozenset[str]:
        return frozenset({ROUTER_STATE, AGGREGATE_STATE}).union(*(h.latest_only for h in self._timed.values()))

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        """Rebuild the router's, the aggregation's and the timed engines' state of the assigned partitions."""
        await asyncio.gather(self.router.on_assign(assigned), self.aggregator.on_assign(assigned),
                             *(h.on_assign(assigned) for h in self._timed.values()))

    async def handle(self, message: InMessage) -> Sequence[OutMessage]:
        """One record's step, after reading back the router's and the aggregation's state of its submission
        when they left memory (``broker._state``: final work is evicted after a retention)."""
        if message.key is not None and not self._read_back(message):  # the hub's topics: keyed by submission id
            await self._load(message.key.decode(errors="replace"))
        try:
            out = await self._handle(message)
        except Evicted as evicted:  # a record keyed otherwise (an outside agency's) for an evicted submission
            await self._load(evicted.submission_id)
            out = await self._handle(message)
        return [*out, *self.aggregator.flush()]

    def _read_back(self, message: InMessage) -> bool:
        """A record :meth:`_handle` skips (the core's own, or a router's not redriven): no state to read back for
        it. A restarted instance reads many of them again, of submissions long final and evicted; reading each
        one's state back from the changelog made one batch outlast its transaction's timeout, again and again."""
        if message.topic == SUBMISSIONS:
            return False
        if core_processed(message):
            return True
        return (message.topic == ROUTING or message.topic in self._requests) and not _redriven(message)

    async def _load(self, submission_id: str) -> None:
        for store in (self.router.store, self.aggregator.store):
            if store.needs_load(submission_id):
                await store.load(submission_id)

    async def _handle(self, message: InMessage) -> Sequence[OutMessage]:
        topic = message.topic
        if topic == SUBMISSIONS:
            return await self._submission(message)
        if core_processed(message):
            return []  # the core's own record, read back
        if topic == ROUTING or topic in self._requests:
            if not _redriven(message):
                return []  # a router's record: processed by the step (or the separate service) that followed it
            if topic == ROUTING:
                return await self._stage("aggregator", self.aggregator.handle, message)
            return await self._decide(self._requests[topic], message)
        out: list[OutMessage] = []
        for agency, handler in self._extra.get(topic, ()):
            out += await self._stage(f"adapter-{agency}", handler, message)
        sender = self._decisions.get(topic)
        if sender is not None:
            out += await self._stage("aggregator", functools.partial(self._decision, sender), message)
        return out

    def _decision(self, agency: str, message: InMessage) -> Sequence[OutMessage]:
        decision: AgencyDecision = decode(message, "AgencyDecision")  # type: ignore[assignment]
        if agency in self.engines and _engine_decision(decision) and not _redriven(message):
            # An embedded engine's decision written by the separate adapter of an earlier run: the separate
            # aggregator took it then.
            return []
        return self.aggregator.take_decision(decision, agency=agency, partition=message.partition,
                                             source=(message.topic, message.partition, message.offset))

    async def _submission(self, message: InMessage) -> list[OutMessage]:
        routed = await self._attempt("router", self.router.route_message, message)
        if isinstance(routed, OutMessage):
            return [routed]  # the submission's dead letter
        outputs, plan = routed
        out: list[OutMessage] = []
        asked: list[tuple[str, OutMessage]] = []
        plan_out: OutMessage | None = None
        for output in outputs:
            kept = output
            if output.topic == ROUTING:
                plan_out = kept = _stamped(output)
            elif (asked_agency := self._requests.get(output.topic)) is not None:
                kept = _stamped(output)
                asked.append((asked_agency, kept))
            out.append(kept)
        if plan is None or plan_out is None:
            return out  # already routed: nothing new
        partition = message.partition
        out += await self._stage("aggregator", lambda _m: self.aggregator.take_plan(plan, partition=partition),
                                 _as_input(plan_out, partition))
        for agency, request in asked:
            out += await self._decide(agency, _as_input(request, partition))
        return out

    async def _decide(self, agency: str, request: InMessage) -> list[OutMessage]:
        """The embedded engine's answer to ``request`` and its aggregation."""
        decided = await self._attempt(f"adapter-{agency}", self.engines[agency], request)
        if isinstance(decided, OutMessage):
            return [decided]
        return await self._aggregate_own(agency, decided, request.partition)

    async def _aggregate_own(self, agency: str, outputs: Sequence[OutMessage], partition: int) -> list[OutMessage]:
        """An engine's outputs, its decisions stamped and aggregated in the same step."""
        out: list[OutMessage] = []
        topic = decisions_topic(agency)
        for output in outputs:
            if output.topic != topic:
                out.append(output)  # the engine's own records (IPR notices and clocks)
                continue
            kept = _stamped(output)
            out.append(kept)
            out += await self._stage("aggregator", self.aggregator.handle, _as_input(kept, partition))
        return out

    async def tick(self, partition: int, now: int) -> list[OutMessage]:
        """The timed engines' timers (their decisions aggregated at once), then the deadlines."""
        out: list[OutMessage] = []
        for agency, handler in self._timed.items():
            ticked = handler.tick(partition, now)
            if inspect.isawaitable(ticked):  # it reads back what left memory first
                ticked = await ticked
            out += await self._aggregate_own(agency, ticked, partition)
        out += self.aggregator.flush()
        out += self.aggregator.tick(partition, now)
        return out

    async def _stage(self, service: str, work: Callable[[InMessage], Any], message: InMessage) -> list[OutMessage]:
        result = await self._attempt(service, work, message)
        return [result] if isinstance(result, OutMessage) else list(result)

    async def _attempt(self, service: str, work: Callable[[InMessage], T | Awaitable[T]], message: InMessage
                       ) -> T | OutMessage:
        """``work``'s result after bounded retries, as the separate service would have retried it; a record that
        keeps failing gives its dead letter, in the name of the service whose stage it failed in."""
        first_failure = 0
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                result = work(message)
                if inspect.isawaitable(result):
                    result = await result
            except Evicted:
                raise  # not a failure: the state is read back and the record handled again (``handle``)
            except Exception as exc:  # noqa: BLE001 - whatever breaks on one record, that record is retried, then dead-lettered
                first_failure = first_failure or now_ms()
                if attempt < attempts and getattr(exc, "retriable", True):
                    log.info("retrying", stage=service, attempt=attempt, error_type=exc.__class__.__name__)
                    await asyncio.sleep(self._retry.delay(attempt))
                    continue
                log.warning("dead_lettered", stage=service, attempts=attempt, error_type=exc.__class__.__name__,
                            error=str(exc)[:500], topic=message.topic, partition=message.partition,
                            offset=message.offset)
                self.dead_lettered += 1
                metrics.DEAD_LETTERS.inc(service)
                return dead_letter(message, exc, service=service, dlq=DLQ, attempts=attempt,
                                   first_failure=first_failure)
            else:
                return result
        raise AssertionError("unreachable: the last attempt returns or dead-letters")


def core_spec(core: FusedCore) -> ProcessorSpec:
    return ProcessorSpec(
        service=CORE_SERVICE,
        group_id=CORE_GROUP,
        topics=core.topics,
        transactional_prefix=CORE_GROUP,
        handler=core.handle,
        dlq=DLQ,
        on_assign=core.on_assign,
        on_tick=core.tick,
        latest_only=core.latest_only,
        defer_empty=True,  # its own records read back produce nothing: no transaction of their own
        dead_letter_service=stage_of,
    )
