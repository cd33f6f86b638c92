"""Kafka plumbing: topic creation, the idempotent producer, and the transactional processor loop.

This is the only module that imports aiokafka; its errors become ``broker.errors`` here.
Every service that consumes and produces (router, adapters, aggregator) is a
``TransactionalProcessor``: it reads a batch with ``read_committed``, hands each record to a
pure-ish handler, and writes the handler's output together with the consumed offsets in one
Kafka transaction. Output and progress are therefore committed together or not at all; a crash
replays the batch and the aborted output is never seen by ``read_committed`` readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFenced,
    TopicAlreadyExistsError,
)

from broker._envelope import Headers, InMessage, OutMessage
from broker._topics import TopicSpec
from broker.errors import FencedError, NSWError, ProduceError, TransportError

log = structlog.get_logger("nsw.kafka")

Handler = Callable[[InMessage], Sequence[OutMessage]]
AssignHook = Callable[[set[tuple[str, int]]], Awaitable[None]]


@asynccontextmanager
async def kafka_errors(action: str) -> AsyncIterator[None]:
    """Translate aiokafka's exceptions into ours, once, at the boundary."""
    try:
        yield
    except ProducerFenced as exc:
        raise FencedError(f"{action}: fenced by a newer instance") from exc
    except (KafkaConnectionError, KafkaTimeoutError) as exc:
        raise TransportError(f"{action}: Kafka unreachable or slow ({exc})") from exc
    except KafkaError as exc:
        error = TransportError if getattr(exc, "retriable", False) else NSWError
        raise error(f"{action}: {exc.__class__.__name__}: {exc}") from exc


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the declared topics that do not exist yet; return the names created."""
    specs = list(specs)
    async with kafka_errors("create topics"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [s for s in specs if s.name not in existing]
            if missing:
                new = [NewTopic(s.name, s.partitions, s.replication, topic_configs=s.configs()) for s in missing]
                # Another process may win the race: the topics are there then, which is all we want.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
        finally:
            await admin.close()
    for spec in missing:
        log.info("topic_created", topic=spec.name, partitions=spec.partitions, cleanup=spec.cleanup_policy)
    return [s.name for s in missing]


async def partition_counts(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """How many partitions each existing topic has (absent topics are left out)."""
    async with kafka_errors("describe topics"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            described = await admin.describe_topics(list(topics))
        finally:
            await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}


def _producer_kwargs(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30000,
    }


class Producer:
    """The ingress producer: idempotent, ``acks=all``; ``send`` returns once the broker has it."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(**_producer_kwargs(bootstrap))

    async def start(self) -> None:
        async with kafka_errors("start producer"):
            await self._producer.start()

    async def stop(self) -> None:
        async with kafka_errors("stop producer"):
            await self._producer.stop()

    async def send(self, message: OutMessage) -> tuple[int, int]:
        """Write and wait for the acknowledgement; return (partition, offset)."""
        try:
            async with kafka_errors(f"produce to {message.topic}"):
                meta = await self._producer.send_and_wait(
                    message.topic, message.value, key=message.key, headers=list(message.headers)
                )
        except TransportError as exc:
            raise ProduceError(str(exc)) from exc
        return meta.partition, meta.offset


def to_in_message(record: Any) -> InMessage:
    return InMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=tuple(record.headers or ()),
    )


def dead_letter(message: InMessage, error: BaseException, *, service: str, dlq: str) -> OutMessage:
    """The original bytes, with headers saying what failed, where and when."""
    now = str(int(time.time() * 1000)).encode()
    headers: Headers = (
        *message.headers,
        ("nsw-error-type", error.__class__.__name__.encode()),
        ("nsw-error-message", str(error)[:2000].encode("utf-8", "replace")),
        ("nsw-source-topic", message.topic.encode()),
        ("nsw-source-partition", str(message.partition).encode()),
        ("nsw-source-offset", str(message.offset).encode()),
        ("nsw-service", service.encode()),
        ("nsw-attempts", b"1"),
        ("nsw-first-failure", now),
        ("nsw-last-failure", now),
    )
    return OutMessage(topic=dlq, key=message.key or b"", value=message.value, headers=headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessorSpec:
    """What a transactional processor reads, who it is, and what it does with each record."""

    service: str
    group_id: str
    topics: tuple[str, ...]
    transactional_id: str
    handler: Handler
    dlq: str
    on_assign: AssignHook | None = None
    max_records: int = 500


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, hook: AssignHook | None) -> None:
        self._hook = hook

    async def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions_revoked", count=len(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions_assigned", count=len(assigned))
        if self._hook is not None:
            await self._hook({(tp.topic, tp.partition) for tp in assigned})


class TransactionalProcessor:
    """consume → handle → produce + commit offsets, in one Kafka transaction per batch."""

    def __init__(self, spec: ProcessorSpec, bootstrap: str) -> None:
        self.spec = spec
        self._bootstrap = bootstrap
        self._stopping = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=spec.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            fetch_max_wait_ms=100,
            max_poll_records=spec.max_records,
        )
        kwargs = _producer_kwargs(bootstrap)
        kwargs["transactional_id"] = spec.transactional_id
        self._producer = AIOKafkaProducer(**kwargs)
        self.processed = 0

    async def start(self) -> None:
        async with kafka_errors(f"start {self.spec.service}"):
            await self._producer.start()
            self._consumer.subscribe(list(self.spec.topics), listener=_Listener(self.spec.on_assign))
            await self._consumer.start()

    def request_stop(self) -> None:
        """Finish the batch in hand, then return from ``run``."""
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        for closer in (self._consumer.stop, self._producer.stop):
            try:
                async with kafka_errors(f"stop {self.spec.service}"):
                    await asyncio.wait_for(closer(), timeout=10)
            except (NSWError, TimeoutError) as exc:
                log.warning("stop_incomplete", service=self.spec.service, error=str(exc))

    async def run(self) -> None:
        """Process until ``stop``; raises TransportError/FencedError for the supervisor to act on."""
        while not self._stopping.is_set():
            async with kafka_errors(f"fetch for {self.spec.service}"):
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self.spec.max_records)
            if not batches:
                continue
            await self._process(batches)

    async def _process(self, batches: dict[Any, list[Any]]) -> None:
        outputs: list[OutMessage] = []
        offsets: dict[Any, int] = {}
        for tp, records in batches.items():
            for record in records:
                message = to_in_message(record)
                # One context per message: ids bound by the handler must not leak to the next one.
                structlog.contextvars.clear_contextvars()
                structlog.contextvars.bind_contextvars(
                    service=self.spec.service, topic=message.topic, partition=message.partition,
                    offset=message.offset,
                )
                outputs.extend(self._handle(message))
            offsets[tp] = records[-1].offset + 1
        async with kafka_errors(f"commit {self.spec.service} batch"), self._producer.transaction():
            for out in outputs:
                await self._producer.send(out.topic, out.value, key=out.key, headers=list(out.headers))
            await self._producer.send_offsets_to_transaction(offsets, self.spec.group_id)
        self.processed += sum(len(r) for r in batches.values())

    def _handle(self, message: InMessage) -> Sequence[OutMessage]:
        try:
            return self.spec.handler(message)
        except Exception as exc:  # noqa: BLE001 - whatever breaks on one record, that record goes to the DLQ
            log.warning("dead_lettered", service=self.spec.service, error_type=exc.__class__.__name__,
                        error=str(exc)[:500])
            return [dead_letter(message, exc, service=self.spec.service, dlq=self.spec.dlq)]


async def read_to_end(
    bootstrap: str, partitions: Iterable[tuple[str, int]], on_record: Callable[[InMessage], None]
) -> int:
    """Read committed records of ``partitions`` from the beginning up to their current end.

    Used to rebuild state from a compacted changelog before processing resumes.
    """
    tps = [TopicPartition(t, p) for t, p in partitions]
    if not tps:
        return 0
    count = 0
    async with kafka_errors("read changelog"):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed",
            group_id=None, fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=200, max_records=2000)
                for records in batches.values():
                    for record in records:
                        on_record(to_in_message(record))
                        count += 1
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
    return count


class TopicTail:
    """Follows whole topics (every partition, from the beginning, no consumer group).

    For read models such as the status view: every instance sees everything, committed only.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self._topics = tuple(topics)
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", fetch_max_wait_ms=100, max_poll_records=2000,
        )
        self._ends: dict[Any, int] = {}

    async def start(self) -> None:
        counts = await partition_counts(self._bootstrap, self._topics)
        async with kafka_errors("start topic tail"):
            await self._consumer.start()
            tps = [TopicPartition(topic, p) for topic in self._topics for p in range(counts.get(topic, 0))]
            self._consumer.assign(tps)
            await self._consumer.seek_to_beginning(*tps)
            ends = await self._consumer.end_offsets(tps)
        self._ends = {tp: end for tp, end in ends.items() if end > 0}

    async def fetch(self, *, timeout_ms: int = 500) -> list[InMessage]:
        async with kafka_errors("tail fetch"):
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=2000)
        return [to_in_message(r) for records in batches.values() for r in records]

    async def caught_up(self) -> bool:
        """True once every partition has been read up to where it ended at start."""
        async with kafka_errors("tail position"):
            for tp in list(self._ends):
                if await self._consumer.position(tp) >= self._ends[tp]:
                    del self._ends[tp]
        return not self._ends

    async def stop(self) -> None:
        async with kafka_errors("stop topic tail"):
            await asyncio.wait_for(self._consumer.stop(), timeout=10)
