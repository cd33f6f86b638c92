"""The transactional processor: consume → handle → produce + commit offsets, in one Kafka transaction.

Every service that consumes and produces (router, adapters, aggregator, notifier, auditor) is a
``TransactionalProcessor``: it reads a batch with ``read_committed``, hands each record to a
pure-ish handler, and writes the handler's output together with the consumed offsets in one
Kafka transaction. Output and progress are therefore committed together or not at all; a crash
replays the batch and the aborted output is never seen by ``read_committed`` readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from bus._batching import PendingBatch
from bus._clients import bounded, client_auth, consumer_limits, fetch_timing, producer_kwargs, to_in_message
from bus._errors import kafka_errors
from bus._letters import dead_letter, fit_dead_letter, out_size
from bus._limits import MAX_MESSAGE_BYTES, dlq_limit
from bus._metrics import DEAD_LETTERS
from bus._producer import COMMIT_SECONDS, commit_batch, keep_latest
from bus._records import InMessage, OutMessage
from bus.errors import NSWError, OutputTooLarge, TransportError

__all__ = ["LOST_MEMBERSHIP_SECONDS", "PREPARE_SECONDS", "STALL_SECONDS", "AssignHook", "Handler",
           "PinnedPartitionProcessor", "ProcessorSpec", "RetryPolicy", "TransactionalProcessor", "consumer_lag",
           "describe_processors", "handle_record", "output_too_large", "transactional_producers"]

log = structlog.get_logger("nsw.kafka")

Handler = Callable[[InMessage], Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]]
AssignHook = Callable[[set[tuple[str, int]]], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often a failing record is tried before it goes to the dead-letter topic."""

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, for the wait after failed ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))  # noqa: S311


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessorSpec:
    """What a transactional processor reads, who it is, and what it does with each record."""

    service: str
    group_id: str
    topics: tuple[str, ...]
    transactional_prefix: str
    handler: Handler
    dlq: str
    on_assign: AssignHook | None = None
    #: Records one partition's transaction takes at most; a partition whose pending batch holds this many
    #: is paused until its worker takes the batch (back-pressure).
    max_records: int = 500
    #: Seconds between the starts of one partition's transactions under load (records accumulate in
    #: between); a record arriving after a quiet spell is committed at once (bus/_batching.py).
    commit_interval: float = 0.05
    retry: RetryPolicy = RetryPolicy()
    #: Called about every ``tick_seconds`` per owned partition number with the time in epoch ms; its
    #: output is written in a transaction of that partition's producer (deadlines, timers).
    on_tick: Callable[[int, int], Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]] | None = None
    tick_seconds: float = 1.0
    #: Compacted changelog topics among the outputs: of several records for one key in a transaction only
    #: the last is written (readers with read_committed never see the earlier ones apart from it anyway).
    latest_only: frozenset[str] = frozenset()
    #: The size budget of each output (the DLQ allows ``DLQ_HEADROOM_BYTES`` more), checked before committing.
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: A batch whose records produce no output gets no transaction of its own: its offsets are committed
    #: with the partition's next transaction, or on its own after ``DEFER_SECONDS`` of quiet (records a
    #: processor reads back from its own outputs, duplicates). Reading them again after a crash produces
    #: nothing again, so nothing is lost or doubled; it saves a transaction per such batch.
    defer_empty: bool = False
    #: A service no one waits for by the millisecond: its fetches gather what a quarter of a
    #: second brings (``bus._clients.fetch_timing``) instead of answering once per record, so it makes fewer and
    #: larger fetches, batches and transactions, for the broker and for the event loop alike.
    patient: bool = False
    #: The service a dead letter names for an input topic (a processor doing several services' work names
    #: the one whose stage failed); None: ``service``.
    dead_letter_service: Callable[[str], str] | None = None

    def letter_service(self, topic: str) -> str:
        """The service named in the dead letter of a record of ``topic``."""
        return self.service if self.dead_letter_service is None else self.dead_letter_service(topic)

    def transactional_id(self, partition: int) -> str:
        return f"{self.transactional_prefix}-p{partition}"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, processor: TransactionalProcessor) -> None:
        self._processor = processor

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._processor.partitions_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._processor.partitions_assigned({(tp.topic, tp.partition) for tp in assigned})


_LIVE: weakref.WeakSet[TransactionalProcessor] = weakref.WeakSet()

#: Seconds without a record, while records wait, before a consumer is declared stalled and restarted.
STALL_SECONDS = 15.0
#: Seconds a consumer may be without group membership (and so without records) before it is restarted.
LOST_MEMBERSHIP_SECONDS = 45.0
#: Seconds to start a partition's producer or restore its state before the service is restarted.
PREPARE_SECONDS = 90.0
#: Seconds the offsets of a batch that produced nothing may wait for the partition's next transaction.
DEFER_SECONDS = 1.0


def consumer_lag() -> list[tuple[tuple[str, str, str], float]]:
    """Records waiting per live processor and partition (high watermark minus position), for /metrics."""
    rows = []
    for processor in list(_LIVE):
        consumer = processor._consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            state = consumer._subscription.subscription
            position = None
            with contextlib.suppress(Exception):
                position = state.assignment.state_value(tp).position if state is not None else None
            if high is not None and position is not None:
                rows.append(((processor.spec.group_id, tp.topic, str(tp.partition)), float(max(0, high - position))))
    return rows


def transactional_producers() -> list[tuple[tuple[str], float]]:
    """Transactional producers started or starting per live processor's service, for /metrics."""
    counts: dict[tuple[str], float] = {}
    for processor in list(_LIVE):
        counts[(processor.spec.service,)] = counts.get((processor.spec.service,), 0.0) + len(processor._producers)
    return list(counts.items())


def describe_processors() -> list[dict[str, Any]]:
    """What each live processor's consumer believes (assignment, positions, group membership): for
    ``kill -USR1`` diagnostics when a service seems stuck."""
    out = []
    for processor in list(_LIVE):
        consumer = processor._consumer
        coordinator = getattr(consumer, "_coordinator", None)
        assignment = sorted((tp.topic, tp.partition) for tp in consumer.assignment())
        positions = {}
        for topic, partition in assignment:
            tp = TopicPartition(topic, partition)
            with contextlib.suppress(Exception):
                positions[f"{topic}:{partition}"] = (consumer._subscription.subscription.assignment
                                                     .state_value(tp).position, consumer.highwater(tp))
        out.append({
            "service": processor.spec.service,
            "member_id": getattr(coordinator, "member_id", None),
            "generation": getattr(coordinator, "generation", None),
            "coordinator_id": getattr(coordinator, "coordinator_id", None),
            "assignment": len(assignment),
            "unprepared": sorted(processor._unprepared),
            "processed": processor.processed,
            "positions_vs_highwater": positions,
        })
    return out


@dataclass(slots=True, eq=False)
class _Lane:
    """One input partition number's pending batch and the worker that handles and commits it."""

    number: int
    pending: PendingBatch
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None
    #: Set from the moment a transaction of this partition is decided until it has committed or failed.
    committing: bool = False
    #: Set when revoked: no transaction starts any more.
    closing: bool = False
    #: Set when stopping: the batch in hand is finished (committed), no other is taken.
    draining: bool = False
    tick_due: bool = False
    paused: set[Any] = field(default_factory=set)


class TransactionalProcessor:
    """consume → handle → produce + commit offsets, in one Kafka transaction per partition and batch.

    Pipelined per partition: the fetch loop only distributes records to the pending batch of their
    partition number (bus/_batching.py); each partition has a worker that takes its batch when due,
    handles it and commits it, strictly in order, while the loop fetches on and the other partitions
    commit independently. A partition whose pending batch is full is paused until its worker takes it.

    Exactly-once without KIP-447: aiokafka commits offsets in a transaction without the consumer
    generation, so a zombie (an instance that lost its partitions but does not know it yet) could
    commit. Each input partition number therefore has its own transactional id
    (``<prefix>-p<n>``); whoever is assigned partition n starts that producer, which fences the
    previous owner's producer: the zombie's commit fails and its output is aborted. All input
    topics of a processor are co-partitioned, so partition n of each belongs to the same id.
    """

    def __init__(self, spec: ProcessorSpec, bootstrap: str) -> None:
        self.spec = spec
        self._bootstrap = bootstrap
        self._deferred: dict[int, dict[Any, int]] = {}  # offsets of batches that produced nothing, per partition
        self._deferred_since: dict[int, float] = {}
        self._stopping = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            **client_auth(),
            **consumer_limits(),
            bootstrap_servers=bootstrap,
            group_id=spec.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            **fetch_timing(patient=spec.patient),
            max_poll_records=spec.max_records,
            # A crashed instance's partitions move after 6 s (the broker's minimum), not the default 45 s.
            session_timeout_ms=6000,
            heartbeat_interval_ms=1500,
        )
        self._producers: dict[int, asyncio.Task[AIOKafkaProducer]] = {}
        self._unprepared: set[int] = set()
        self._lost_since = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        #: Set once the group has given this processor partitions (readiness for tools and tests).
        self.assigned = asyncio.Event()
        self.processed = 0
        self._lanes: dict[int, _Lane] = {}
        #: Workers of revoked partitions still handling a batch they will not commit; a new worker of the
        #: same partition waits for it (one worker per partition at a time, in order).
        self._retiring: dict[int, asyncio.Task[None]] = {}
        self._failure: BaseException | None = None
        _LIVE.add(self)
        self.dead_lettered = 0

    async def start(self) -> None:
        async with kafka_errors(f"start {self.spec.service}"):
            self._consumer.subscribe(list(self.spec.topics), listener=_Listener(self))
            await self._consumer.start()

    async def partitions_assigned(self, assigned: set[tuple[str, int]]) -> None:
        """Only note the new partitions: slow work in a rebalance callback stalls the whole group
        (and, after a broker restart, can keep it rebalancing), so producers are started and state
        restored by ``_prepare`` just before a partition's first batch."""
        numbers = {p for _, p in assigned}
        self._unprepared |= numbers
        if numbers:
            self.assigned.set()
        log.info("partitions_assigned", service=self.spec.service, partitions=sorted(numbers))

    async def _prepare(self, number: int, lane: _Lane | None = None) -> AIOKafkaProducer:
        producer = await self._producer(number)  # first: fences the previous owner, aborting its transaction
        if number in self._unprepared:
            if self.spec.on_assign is not None:
                try:
                    await bounded(self.spec.on_assign({(topic, number) for topic in self.spec.topics}), PREPARE_SECONDS)
                except TimeoutError:
                    raise TransportError(f"{self.spec.service} p{number}: state not restored in "
                                         f"{PREPARE_SECONDS} s") from None
            if lane is None or not lane.closing:  # revoked meanwhile (and perhaps assigned again): not ours
                self._unprepared.discard(number)
        return producer

    async def _producer(self, partition: int) -> AIOKafkaProducer:
        """The transactional producer of ``partition``, started once (fetches may race the listener)."""
        task = self._producers.get(partition)
        if task is None:
            task = self._producers[partition] = asyncio.create_task(self._start_producer(partition))
        try:
            return await asyncio.shield(task)
        except NSWError:
            self._producers.pop(partition, None)
            raise

    async def _start_producer(self, partition: int) -> AIOKafkaProducer:
        kwargs = producer_kwargs(self._bootstrap, self.spec.max_message_bytes)
        kwargs["transactional_id"] = self.spec.transactional_id(partition)
        producer = AIOKafkaProducer(**kwargs)
        try:
            async with kafka_errors(f"start {self.spec.service} producer p{partition}"):
                await bounded(producer.start(), PREPARE_SECONDS)  # init_transactions: fences older producers
        except TimeoutError:
            raise TransportError(f"{self.spec.service} producer p{partition} did not start") from None
        return producer

    async def partitions_revoked(self, numbers: set[int]) -> None:
        for number in numbers:  # the next owner reads those records again (they produce nothing again)
            self._deferred.pop(number, None)
            self._deferred_since.pop(number, None)
        if numbers:
            log.info("partitions_revoked", service=self.spec.service, partitions=sorted(numbers))
        # A revoked partition's commit in flight finishes (or fails) before the partition is given up; a
        # batch not yet committing never is (the next owner reads it again from the committed offsets).
        await self._close_lanes([self._lanes.pop(n) for n in sorted(numbers) if n in self._lanes], retire=True)
        self._unprepared -= numbers
        leaving = [self._producers.pop(n) for n in sorted(numbers) if n in self._producers]
        if leaving:  # stopped in the background: the next owner fences them anyway
            closing = asyncio.create_task(self._stop_producers(leaving))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _stop_producers(self, tasks: list[asyncio.Task[AIOKafkaProducer]]) -> None:
        for task in tasks:
            try:
                producer = await task
                async with kafka_errors(f"stop {self.spec.service} producer"):
                    await bounded(producer.stop(), 10)
            except (NSWError, TimeoutError) as exc:
                log.warning("stop_incomplete", service=self.spec.service, error=str(exc))

    def request_stop(self) -> None:
        """Finish the batch in hand, then return from ``run``."""
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        _LIVE.discard(self)
        await self._drain()
        try:
            async with kafka_errors(f"stop {self.spec.service}"):
                await bounded(self._consumer.stop(), 10)
        except (NSWError, TimeoutError) as exc:
            log.warning("stop_incomplete", service=self.spec.service, error=str(exc))
        producers, self._producers = list(self._producers.values()), {}
        await self._stop_producers(producers)
        if self._closing:
            await asyncio.wait(self._closing, timeout=10)

    async def run(self) -> None:
        """Process until ``stop``; raises TransportError/FencedError for the supervisor to act on."""
        last_tick = last_records = time.monotonic()
        try:
            while not self._stopping.is_set():
                self._raise_failure()
                async with kafka_errors(f"fetch for {self.spec.service}"):
                    batches = await self._consumer.getmany(timeout_ms=200, max_records=self.spec.max_records)
                if batches:
                    last_records = time.monotonic()
                    self._accept(batches)
                elif self._busy():  # paused partitions are not stalled ones
                    last_records = time.monotonic()
                elif time.monotonic() - last_records > STALL_SECONDS:
                    last_records = time.monotonic()
                    await self._check_stall()
                timed = self.spec.on_tick is not None or self.spec.defer_empty
                if timed and time.monotonic() - last_tick >= self.spec.tick_seconds:
                    last_tick = time.monotonic()
                    self._request_ticks()
        except Exception:
            await self._drain()
            self._raise_failure()  # a partition's failure (fenced, commit refused) says more than the fetch's
            raise
        except asyncio.CancelledError:
            for lane in self._lanes.values():
                if lane.worker is not None:
                    lane.worker.cancel()
            raise
        await self._drain()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _busy(self) -> bool:
        return any(lane.pending or lane.committing for lane in self._lanes.values())

    def _lane(self, number: int) -> _Lane:
        lane = self._lanes.get(number)
        if lane is None:
            lane = self._lanes[number] = _Lane(number, PendingBatch(interval=self.spec.commit_interval,
                                                                    max_records=self.spec.max_records))
            lane.worker = asyncio.create_task(self._work(lane, self._retiring.pop(number, None)),
                                              name=f"{self.spec.service}-p{number}")
        return lane

    def _accept(self, batches: Mapping[Any, list[Any]]) -> None:
        """Add fetched records to their partitions' pending batches; pause the partitions now full."""
        assigned = self._consumer.assignment()
        for tp, records in batches.items():
            if tp not in assigned:
                continue  # revoked since the fetch: the next owner reads them
            lane = self._lane(tp.partition)
            lane.pending.add(tp, records)
            if lane.pending.full and tp not in lane.paused:
                self._consumer.pause(tp)
                lane.paused.add(tp)
            lane.wake.set()

    def _resume(self, lane: _Lane) -> None:
        assigned = self._consumer.assignment()
        if lane.paused:
            self._consumer.resume(*(lane.paused & assigned))
            lane.paused.clear()

    def _request_ticks(self) -> None:
        for number in sorted({tp.partition for tp in self._consumer.assignment()}):
            lane = self._lane(number)
            lane.tick_due = True
            lane.wake.set()

    async def _work(self, lane: _Lane, previous: asyncio.Task[None] | None) -> None:
        """Take the partition's batch when due, handle and commit it; then the next one."""
        try:
            if previous is not None:  # a retired worker of this partition still handling: in order
                await asyncio.wait({previous})
            while not (lane.closing or lane.draining):
                if lane.tick_due:
                    lane.tick_due = False
                    await self._tick_partition(lane)
                    continue
                if not lane.pending:
                    lane.wake.clear()
                    await lane.wake.wait()
                    continue
                delay = lane.pending.delay(time.monotonic())
                if delay > 0:
                    lane.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), delay)
                    continue
                parts = lane.pending.take(time.monotonic())
                self._resume(lane)
                await self._process_partition(lane, parts)
        except Exception as exc:  # noqa: BLE001 - handed to ``run``, which raises it for the supervisor
            if not lane.closing and self._failure is None:
                self._failure = exc
        finally:
            lane.committing = False

    async def _close_lanes(self, lanes: Sequence[_Lane], *, retire: bool = False) -> None:
        """Revoke ``lanes``: commits in flight are waited for; a batch being handled is not committed (its
        worker, retired, ends after the handler returns: a handler's state is never restored while it
        still works on it)."""
        committing = []
        for lane in lanes:
            lane.closing = True
            lane.pending.drop()
            lane.paused.clear()
            lane.wake.set()
            if lane.worker is None or lane.worker.done():
                continue
            if lane.committing:
                committing.append(lane.worker)
            elif retire:
                self._retiring[lane.number] = lane.worker
        if committing:
            _, late = await asyncio.wait(committing, timeout=COMMIT_SECONDS)
            if late:
                log.warning("commit_unfinished_on_revoke", service=self.spec.service, workers=len(late))

    async def _drain(self) -> None:
        """Finish the batches in hand (handled and committed) and forget those not yet taken; a worker
        that does not finish within ``COMMIT_SECONDS`` is cancelled (its transaction, if open, is aborted
        by the next owner's fencing)."""
        lanes, self._lanes = list(self._lanes.values()), {}
        retiring, self._retiring = list(self._retiring.values()), {}
        workers = [lane.worker for lane in lanes if lane.worker is not None and not lane.worker.done()]
        for lane in lanes:
            lane.draining = True
            lane.pending.drop()
            lane.wake.set()
        for task in retiring:
            task.cancel()
        late: set[asyncio.Task[None]] = set(workers + retiring)
        try:
            if late:
                _, late = await asyncio.wait(late, timeout=COMMIT_SECONDS)
        finally:
            for task in late:
                task.cancel()

    async def _check_stall(self) -> None:
        """Restart a consumer that gets nothing although committed records wait for it.

        After a broker restart an aiokafka consumer without auto-commit can lose its group membership
        and then wait forever (its coordination loop has no timeout); the supervisor's restart with a
        fresh consumer recovers it. A consumer that has lost its membership may also have no assignment
        left to show lag on, so that state counts as stalled by itself.
        """
        coordinator = getattr(self._consumer, "_coordinator", None)  # aiokafka internals: see docstring
        if getattr(coordinator, "generation", None) == -1 and getattr(coordinator, "member_id", None) == "":
            # Also the state of a consumer still joining: only a long absence counts.
            lost_for = time.monotonic() - (self._lost_since or time.monotonic())
            self._lost_since = self._lost_since or time.monotonic()
            if lost_for >= LOST_MEMBERSHIP_SECONDS:
                raise TransportError(f"{self.spec.service} stalled: no group membership for {lost_for:.0f} s")
        else:
            self._lost_since = 0.0
        waiting = []
        for tp in self._consumer.assignment():
            if tp not in self._consumer.assignment():  # revoked while an earlier partition's position was awaited
                continue
            stable = self._consumer.last_stable_offset(tp)
            if stable is None:
                stable = self._consumer.highwater(tp)  # an open transaction may make this a false alarm: a restart
            if stable is None:
                continue
            try:
                async with kafka_errors("position"):
                    position = await asyncio.wait_for(self._consumer.position(tp), timeout=5)
            except (NSWError, TimeoutError):
                position = -1  # the consumer cannot even say where it is: as stuck as it gets
            if stable - position > 1:  # one offset may be a transaction marker
                waiting.append(f"{tp.topic}:{tp.partition}")
        if waiting:
            raise TransportError(f"{self.spec.service} stalled: committed records wait on {', '.join(waiting)}")

    async def _tick_partition(self, lane: _Lane) -> None:
        await self._tick_timers(lane)
        await self._commit_deferred(lane)

    async def _tick_timers(self, lane: _Lane) -> None:
        on_tick = self.spec.on_tick
        if on_tick is None:
            return
        number = lane.number
        # A partition with no new record since it was assigned still has timers due (deadlines, webhook
        # retries after a restart): its state is restored now rather than at its first record.
        producer = await self._prepare(number, lane)
        result = on_tick(number, int(time.time() * 1000))
        outputs = await result if inspect.isawaitable(result) else result
        if not outputs or lane.closing:
            return
        lane.committing = True
        try:
            await commit_batch(producer, self._fit_tick(number, outputs), what=f"tick {self.spec.service} p{number}",
                               service=self.spec.service)
        finally:
            lane.committing = False

    def _too_large(self, outputs: Sequence[OutMessage]) -> OutputTooLarge | None:
        """Why ``outputs`` cannot be committed (the first that exceeds its budget), or None."""
        return output_too_large(self.spec, outputs)

    def _fit(self, outputs: Sequence[OutMessage]) -> Sequence[OutMessage]:
        """Dead letters too large for the DLQ lose their value (it stays on the source topic)."""
        limit = dlq_limit(self.spec.max_message_bytes)
        return [fit_dead_letter(out, limit) if out.topic == self.spec.dlq else out for out in outputs]

    def _fit_tick(self, number: int, outputs: Sequence[OutMessage]) -> Sequence[OutMessage]:
        """A timer's outputs, those that cannot fit replaced by a dead letter saying so (no input to blame)."""
        kept: list[OutMessage] = []
        for out in keep_latest(outputs, self.spec.latest_only):
            problem = self._too_large([out])
            if problem is None:
                kept.append(out)
                continue
            log.error("tick_output_too_large", service=self.spec.service, partition=number, topic=out.topic,
                      size=problem.size, limit=problem.limit)
            self.dead_lettered += 1
            DEAD_LETTERS.inc(self.spec.service)
            tick = InMessage(topic=out.topic, partition=number, offset=-1, timestamp=int(time.time() * 1000),
                             key=out.key, value=out.value, headers=out.headers)
            kept.append(dead_letter(tick, problem, service=self.spec.service, dlq=self.spec.dlq))
        return self._fit(kept)

    async def _process_partition(self, lane: _Lane, parts: list[tuple[Any, list[Any]]]) -> None:
        """Handle a batch and commit it in one transaction.

        Every output is checked against its budget first: the record whose output cannot fit is
        dead-lettered (``OutputTooLarge``) in a transaction with the records before it, and the rest of
        the batch is read again after the state is restored (the handler may have changed state for
        the output that was dropped). When the broker still refuses a record as too large (a topic with a
        smaller limit than the budget) the batch is committed record by record to find the one to blame.
        """
        number = lane.number
        producer = await self._prepare(number, lane)
        handled: list[tuple[Any, InMessage, Sequence[OutMessage]]] = []
        blamed = False
        for tp, records in parts:
            for record in records:
                message = to_in_message(record)
                outputs = await self._handle(message)
                problem = self._too_large(outputs)
                if problem is not None:
                    handled.append((tp, message, [self._dead_letter(message, problem)]))
                    blamed = True
                    break
                handled.append((tp, message, outputs))
            if blamed:
                break
        if lane.closing or not self._consumer.assignment() & {tp for tp, _ in parts}:
            # Revoked while we worked: the new owner re-reads these records from the committed offset.
            log.info("batch_dropped_after_revoke", service=self.spec.service, partition=number)
            return
        lane.committing = True
        try:
            try:
                await self._commit(producer, number, handled)
            except OutputTooLarge:
                log.warning("commit_refused_too_large", service=self.spec.service, partition=number,
                            records=len(handled))
                handled = await self._commit_one_by_one(number, handled)
                blamed = True
        finally:
            lane.committing = False
        self.processed += len(handled)
        if blamed and not lane.closing:
            self._rewind(lane, parts, handled)
            await self._prepare(number)

    async def _commit(self, producer: AIOKafkaProducer, number: int,
                      handled: Sequence[tuple[Any, InMessage, Sequence[OutMessage]]]) -> None:
        if not handled:
            return
        offsets: dict[Any, int] = dict(self._deferred.get(number, {}))
        for tp, message, _ in handled:
            offsets[tp] = message.offset + 1
        outputs = [out for _, _, outs in handled for out in outs]
        if not outputs and self.spec.defer_empty:
            self._deferred[number] = offsets
            self._deferred_since.setdefault(number, time.monotonic())
            return
        await self._commit_offsets(producer, number, outputs, offsets)

    async def _commit_offsets(self, producer: AIOKafkaProducer, number: int, outputs: Sequence[OutMessage],
                              offsets: dict[Any, int]) -> None:
        await commit_batch(producer, self._fit(keep_latest(outputs, self.spec.latest_only)), offsets,
                           self.spec.group_id, what=f"commit {self.spec.service} p{number}", service=self.spec.service)
        self._deferred.pop(number, None)
        self._deferred_since.pop(number, None)

    async def _commit_deferred(self, lane: _Lane) -> None:
        """The offsets of batches that produced nothing, once they have waited ``DEFER_SECONDS``."""
        number = lane.number
        since = self._deferred_since.get(number)
        if since is None or time.monotonic() - since < DEFER_SECONDS or lane.closing:
            return
        producer = await self._prepare(number, lane)
        lane.committing = True
        try:
            await self._commit_offsets(producer, number, [], dict(self._deferred.get(number, {})))
        finally:
            lane.committing = False

    async def _commit_one_by_one(self, number: int, handled: Sequence[tuple[Any, InMessage, Sequence[OutMessage]]]
                                 ) -> list[tuple[Any, InMessage, Sequence[OutMessage]]]:
        """Commit ``handled`` a record at a time until the broker refuses one: that one is dead-lettered.
        Returns what was committed (through the dead letter)."""
        done: list[tuple[Any, InMessage, Sequence[OutMessage]]] = []
        producer = await self._renew_producer(number)
        for tp, message, outputs in handled:
            try:
                await self._commit(producer, number, [(tp, message, outputs)])
            except OutputTooLarge as exc:
                letter = (tp, message, [self._dead_letter(message, exc)])
                try:
                    await self._commit(await self._renew_producer(number), number, [letter])
                except OutputTooLarge:  # the DLQ allows less than it should: the letter without the value
                    letter = (tp, message, [fit_dead_letter(out, 0) for out in letter[2]])
                    await self._commit(await self._renew_producer(number), number, [letter])
                done.append(letter)
                return done
            done.append((tp, message, outputs))
        return done

    async def _renew_producer(self, number: int) -> AIOKafkaProducer:
        """A fresh producer for ``number``: after the broker refused a batch, the old one's sequence numbers
        no longer match the broker's (OutOfOrderSequenceNumber on its next transaction); starting the
        same transactional id again bumps the epoch and starts the sequences afresh."""
        old = self._producers.pop(number, None)
        if old is not None:
            await self._stop_producers([old])
        return await self._producer(number)

    def _dead_letter(self, message: InMessage, problem: OutputTooLarge) -> OutMessage:
        log.warning("dead_lettered", attempts=1, error_type=problem.__class__.__name__, error=str(problem)[:500],
                    topic=message.topic, partition=message.partition, offset=message.offset)
        service = self.spec.letter_service(message.topic)
        self.dead_lettered += 1
        DEAD_LETTERS.inc(service)
        return dead_letter(message, problem, service=service, dlq=self.spec.dlq)

    def _rewind(self, lane: _Lane, parts: list[tuple[Any, list[Any]]],
                done: Sequence[tuple[Any, InMessage, Sequence[OutMessage]]]) -> None:
        """Read again what follows the last committed record of each input, with the state as committed
        (the batch fetched meanwhile included: it was handled by no one yet)."""
        committed = {tp: message.offset + 1 for tp, message, _ in done}
        seeks = dict(lane.pending.drop())
        for tp, records in parts:
            seeks[tp] = committed.get(tp, records[0].offset)
        self._resume(lane)
        for tp, offset in seeks.items():
            self._consumer.seek(tp, offset)
        if self.spec.on_assign is not None:
            self._unprepared.add(lane.number)  # restore the state from the changelog: as committed

    async def _handle(self, message: InMessage) -> Sequence[OutMessage]:
        """The handler's output, after bounded retries; a record that keeps failing is dead-lettered."""
        outputs, lettered = await handle_record(self.spec, message)
        self.dead_lettered += lettered
        return outputs


async def handle_record(spec: ProcessorSpec, message: InMessage) -> tuple[Sequence[OutMessage], bool]:
    """The handler's output for ``message``, after bounded retries, and whether it is a dead letter instead (a
    record that keeps failing is dead-lettered). Shared by every processor (Kafka's and the in-memory one)."""
    first_failure = 0
    for attempt in range(1, spec.retry.attempts + 1):
        # One context per message: ids bound by the handler must not leak to the next one.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            service=spec.service, topic=message.topic, partition=message.partition, offset=message.offset
        )
        try:
            result = spec.handler(message)
            return (await result if inspect.isawaitable(result) else result), False
        except Exception as exc:  # noqa: BLE001 - whatever breaks on one record, that record is retried, then dead-lettered
            first_failure = first_failure or int(time.time() * 1000)
            if attempt < spec.retry.attempts and getattr(exc, "retriable", True):
                log.info("retrying", attempt=attempt, error_type=exc.__class__.__name__)
                await asyncio.sleep(spec.retry.delay(attempt))
                continue
            log.warning("dead_lettered", attempts=attempt, error_type=exc.__class__.__name__,
                        error=str(exc)[:500])
            service = spec.letter_service(message.topic)
            DEAD_LETTERS.inc(service)
            return [dead_letter(message, exc, service=service, dlq=spec.dlq,
                                attempts=attempt, first_failure=first_failure)], True
    raise AssertionError("unreachable: the last attempt returns or dead-letters")


def output_too_large(spec: ProcessorSpec, outputs: Sequence[OutMessage]) -> OutputTooLarge | None:
    """Why ``outputs`` cannot be committed (the first that exceeds its budget), or None."""
    for out in outputs:
        if out.topic == spec.dlq:
            continue
        size, limit = out_size(out), spec.max_message_bytes
        if size > limit:
            return OutputTooLarge(f"{spec.service}: an output to {out.topic} would be {size} bytes; "
                                  f"the limit is {limit} bytes", topic=out.topic, size=size, limit=limit)
    return None


# --- Output pinned to the input's partition number: the auditor's entries and chain heads land on the partition
# number of the record they describe, whatever their key hashes to.


class _PinnedSends:
    """A transactional producer whose records for ``pinned`` topics go to one partition number."""

    def __init__(self, producer: Any, partition: int, pinned: frozenset[str]) -> None:
        self._producer = producer
        self._partition = partition
        self._pinned = pinned

    async def send(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                   **kwargs: Any) -> Any:
        if topic in self._pinned:
            partition = self._partition
        return await self._producer.send(topic, value, key=key, partition=partition, **kwargs)

    def __getattr__(self, name: str) -> Any:  # transaction(), send_offsets_to_transaction(), stop() ...
        return getattr(self._producer, name)


class PinnedPartitionProcessor(TransactionalProcessor):
    """A ``TransactionalProcessor`` whose output to ``pinned`` topics is written to the partition
    number of the input partition being processed (or ticked), not the key's partition.

    Used where output must sit beside its input by partition number (the audit chain of partition n
    is written only by the transactional id ``<prefix>-p<n>``, so one fenced writer per chain).
    """

    def __init__(self, spec: ProcessorSpec, bootstrap: str, *, pinned: Iterable[str]) -> None:
        super().__init__(spec, bootstrap)
        self._pinned = frozenset(pinned)

    async def _producer(self, partition: int) -> AIOKafkaProducer:
        return _PinnedSends(await super()._producer(partition), partition, self._pinned)
